"""How each language's programs are invoked: the command lines of PROTOCOL.md section 5.

Each language is driven with its seed spelling (C positional, Python --options), so the
matrix exercises the command lines a student types. Backends add the executable prefix.
"""

from __future__ import annotations

LANGUAGES = ("c", "python")
NOISE_KEY_LENGTH = 32


def server_args(lang: str, port: int, options: list[str]) -> list[str]:
    if lang == "c":
        return [*options, str(port)]
    return ["--port", str(port), *options]


def client_args(
    lang: str, host: str, port: int, message: str | None, options: list[str]
) -> list[str]:
    if lang == "c":
        return [*options, host, str(port), *([] if message is None else [message])]
    argv = ["--host", host, "--port", str(port)]
    if message is not None:
        argv += ["--message", message]
    return [*argv, *options]


def cipher_options(cipher: str, key_file: str) -> list[str]:
    """Noise refuses the public default key (§8): give it a 32-byte key file."""
    if cipher == "xor":
        return []
    return ["--cipher", cipher, "--key-file", key_file]
