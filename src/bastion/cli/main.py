"""The ``bastion`` entry point and its single error catch point.

Exit codes are ``bastion.core.errors.ExitCode`` (documented in the README): every ``BastionError`` maps
to its class's code; anything unexpected is 1 with no stack trace unless BASTION_LOG_LEVEL=debug.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING, Annotated

from bastion.core.errors import BastionError, ExitCode

if TYPE_CHECKING:
    import typer

log = logging.getLogger("bastion.cli")


def _typer() -> typer.Typer:
    import typer  # noqa: PLC0415

    return typer.Typer(
        name="bastion",
        help="Bastion: security control plane and gateway for AI applications.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )


def full_app() -> typer.Typer:
    import typer  # noqa: PLC0415

    from bastion.cli import (  # noqa: PLC0415
        audit_cmd,
        backup_cmd,
        config_cmd,
        data_cmd,
        governance_cmd,
        identity_cmd,
        keys_cmd,
        models_cmd,
        policy_cmd,
        scan_cmd,
        secrets_cmd,
        server_cmd,
    )

    app = _typer()
    app.command("init")(server_cmd.init)
    app.command("up")(server_cmd.up)
    app.add_typer(config_cmd.app, name="config")
    app.add_typer(audit_cmd.app, name="audit")
    app.add_typer(keys_cmd.app, name="keys")
    app.add_typer(secrets_cmd.app, name="secrets")
    app.add_typer(backup_cmd.app, name="backup")
    app.add_typer(identity_cmd.principals, name="principals")
    app.add_typer(identity_cmd.apikeys, name="apikeys")
    app.add_typer(identity_cmd.tokens, name="tokens")
    app.add_typer(identity_cmd.elevations, name="elevations")
    app.add_typer(identity_cmd.breakglass, name="breakglass")
    app.add_typer(identity_cmd.certs, name="certs")
    app.add_typer(policy_cmd.roles, name="roles")
    app.add_typer(policy_cmd.policies, name="policies")
    app.add_typer(models_cmd.app, name="models")
    app.add_typer(data_cmd.app, name="data")
    data_cmd.app.add_typer(governance_cmd.requests, name="requests")
    app.add_typer(governance_cmd.lineage, name="lineage")

    hint = typer.Argument(help="PATH... [--format text|json|sarif] [--output FILE]")

    def scan(arguments: list[str] | None = None) -> int:
        # Listed here for `bastion --help`; `main` hands `scan` to its own lean parser before typer loads.
        return scan_cmd.run(list(arguments or []))

    # Real objects, not strings: the module's `from __future__ import annotations` would hide `hint`.
    scan.__annotations__ = {"arguments": Annotated[list[str] | None, hint], "return": int}
    app.command(
        "scan",
        help=scan_cmd.execute.__doc__,
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    )(scan)
    return app


def main(argv: list[str] | None = None) -> int:
    # Everything Bastion writes (database, keys, certificates) is for its owner only.
    os.umask(0o077)
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["scan"]:
        # CI pipelines call the scanner per artifact: it imports neither typer nor the rest of Bastion.
        from bastion.cli import scan_cmd  # noqa: PLC0415

        return scan_cmd.run(args[1:])
    if args[:2] == ["models", "verify"]:
        from bastion.cli import verify_cmd  # noqa: PLC0415

        return verify_cmd.run(args[2:])
    return _main(args)


def _main(args: list[str]) -> int:
    import typer  # noqa: PLC0415 - not needed by `bastion scan`

    from bastion.cli.output import err  # noqa: PLC0415

    try:
        # Outside standalone mode, click returns the code of a typer.Exit instead of raising it.
        result = full_app()(args=args, standalone_mode=False)
    except BastionError as error:
        _report(error.code, error.diagnostics(), error.message, error.remedy)
        return int(error.exit_code)
    except typer.Exit as done:
        return int(getattr(done, "exit_code", 0))
    except typer.Abort:
        err.print("Aborted.")
        return 130
    except typer.TyperException as usage:
        # Typer's own (vendored click) usage errors: unknown option, bad value, missing argument.
        show = getattr(usage, "show", None)
        if callable(show):
            show()
        return int(ExitCode.USAGE)
    except Exception:
        log.debug("unexpected failure", exc_info=True)
        _report(
            "internal.error",
            "An unexpected error occurred. Run with BASTION_LOG_LEVEL=debug for detail.",
            "An unexpected error occurred.",
            "",
        )
        return int(ExitCode.INTERNAL)
    return result if isinstance(result, int) else int(ExitCode.OK)


def _report(code: str, text: str, message: str, remedy: str) -> None:
    from rich.markup import escape  # noqa: PLC0415

    from bastion.cli.output import emit_json, err, json_mode  # noqa: PLC0415

    if json_mode():
        emit_json({"error": {"code": code, "message": message, "remedy": remedy}})
    else:
        err.print(f"[bold red]error[/] ({escape(code)}): {escape(text)}")


if __name__ == "__main__":
    sys.exit(main())
