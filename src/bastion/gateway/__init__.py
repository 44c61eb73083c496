"""The inference gateway: model serving through a fixed pipeline of authentication, authorization, limits,
validation, isolated invocation, output protection and telemetry."""
