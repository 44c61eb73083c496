"""Interface: the ``bastion`` command line, acting in-process as the local operator."""
