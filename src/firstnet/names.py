"""Names shown safely: class names and file names as a terminal should print them, with hidden characters escaped.

A folder named "\u202egnp.exe" prints as "exe.png" on a terminal (U+202E turns the text around), and a zero-width
space makes two names that look the same differ. Such characters (controls, format and bidirectional marks, line
separators, unassigned and private ones) are shown as \\u escapes; every other letter, in any script, as it is.
"""

import unicodedata

# Unicode categories never printed raw: controls, format characters (bidi overrides, zero-width ones), line and
# paragraph separators, surrogates (undecodable bytes of a file name), private use and unassigned code points.
HIDDEN = {"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"}


def shown(name):
    """`name` (text or a path) with every hidden character written as \\xNN, \\uNNNN or \\UNNNNNNNN."""
    text = str(name)
    if text.isprintable() and not any(unicodedata.category(character) in HIDDEN for character in text):
        return text
    return "".join(_escaped(character) if unicodedata.category(character) in HIDDEN or not character.isprintable()
                   and character != " " else character for character in text)


def _escaped(character):
    code = ord(character)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def shown_all(names):
    return [shown(name) for name in names]
