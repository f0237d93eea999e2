"""``tinylstm``, the command line: one ``cmd_<name>.py`` per command, each a thin wrapper over the function of
``tinylstm.api`` with the same options (tests/test_api_parity.py); ``main.py`` is the entry point."""
