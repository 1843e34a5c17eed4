"""The kinds of user mistake. Each is caught once, at the CLI edge, printed as one line, exit 2."""


class UsageError(Exception):
    """Bad input from the person or script at the keyboard: a wrong id, value or option."""


class ConfigError(UsageError):
    """A config file that cannot be used; the message names the file, the key and what was expected."""
