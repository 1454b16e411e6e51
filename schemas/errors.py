"""The one error base of Crisp, and what each kind of error means for a command's exit code.

In: nothing. Out: `CrispError` (an expected failure whose message is the whole story: the CLI prints
it as one line, never a traceback) with `exit_code` 1 (refused or failed: a gate, a promotion, a
rejected checkpoint), and `InputError` with `exit_code` 2 (bad input or configuration: a setting, a
feed, a model URI, missing data). Each module's own error classes derive from one of them, next to
their usual builtin base (ValueError, LookupError...), so existing `except` clauses keep working and
`crisp.cli.main` maps every one to its exit code in one place. Anything else is a bug: it keeps its
traceback.
"""

from __future__ import annotations


class CrispError(Exception):
    """An expected failure; the message names the problem and the fix."""

    exit_code = 1


class InputError(CrispError):
    """Bad input or configuration, found before anything was changed."""

    exit_code = 2
