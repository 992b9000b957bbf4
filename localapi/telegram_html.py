"""Telegram's ``parse_mode=HTML`` parser, as strict as Telegram (and in two places stricter).

A port of ``parse_html`` in TDLib (td/telegram/MessageEntity.cpp), which the Bot API server runs
for ``parse_mode=HTML``. It returns the text the user would see; errors are raised as
:class:`ApiError` with Telegram's wording (``Bad Request: can't parse entities: ...`` and byte
offsets into the UTF-8 text, as Telegram reports them).

What Telegram accepts, and so this parser:

* tags ``b strong i em u ins s strike del a code pre blockquote tg-spoiler tg-emoji tg-time span``
  (case-insensitive); any other start tag is "Unsupported start tag";
* ``<span>`` only with ``class="tg-spoiler"``; ``<tg-emoji>`` only with a numeric ``emoji-id``;
* end tags must close the innermost open tag ("Unmatched end tag"; ``</>`` closes any), every
  start tag must be closed ("Can't find end tag corresponding to start tag"), a ``<`` that starts
  no tag is an error;
* entities ``&lt; &gt; &amp; &quot;`` and numeric ``&#NNN; &#xHH;``; a bare ``&`` stays literal.

Stricter than Telegram (each is a bug in a bot, never intended output):

* an unknown named entity written with its ``;`` (``&nbsp;``, ``&hellip;``, ``&foo;``) is
  400 ``Unsupported HTML entity "&foo;" at byte offset N``. Telegram shows such text literally
  ("&nbsp;" on the user's screen), which is what the check is for;
* ``<a>`` without a non-empty ``href`` is 400 ``Tag "a" must have an href attribute``. Telegram
  would silently make no link (unless the text itself happens to be a URL).
"""

from __future__ import annotations

from localapi.errors import ApiError

__all__ = ["SUPPORTED_TAGS", "visible_html"]

SUPPORTED_TAGS = frozenset(
    {
        "a", "b", "strong", "i", "em", "s", "strike", "del", "u", "ins", "tg-spoiler", "tg-emoji", "tg-time",
        "span", "pre", "code", "blockquote",
    }
)
_NAMED = {b"lt": "<", b"gt": ">", b"amp": "&", b"quot": '"'}
_SPACE = b" \t\r\n\v\x00"


def _error(message: str) -> ApiError:
    return ApiError(400, f"Bad Request: can't parse entities: {message}")


class _Parser:
    """One pass over the UTF-8 bytes of a text, like TDLib's parse_html."""

    def __init__(self, text: str) -> None:
        self.data = text.encode("utf-8")
        self.out: list[str] = []

    def at(self, i: int) -> int:
        """The byte at i, or 0 past the end (TDLib reads a NUL-terminated string)."""
        return self.data[i] if i < len(self.data) else 0

    def space(self, i: int) -> bool:
        return self.at(i) in _SPACE

    def entity(self, pos: int, strict: bool) -> tuple[str, int] | None:
        """Decode the character reference at pos ('&'); return (character, next pos) or None."""
        data = self.data
        end = pos + 1
        if self.at(end) == ord("#"):
            end += 1
            code = 0
            if self.at(end) == ord("x"):
                end += 1
                while self.at(end) and chr(self.at(end)) in "0123456789abcdefABCDEF":
                    code = code * 16 + int(chr(data[end]), 16)
                    end += 1
            else:
                while ord("0") <= self.at(end) <= ord("9"):
                    code = code * 10 + data[end] - ord("0")
                    end += 1
            if code == 0 or code >= 0x10FFFF or end - pos >= 10:
                return None
            if 0xD800 <= code <= 0xDFFF:
                raise ApiError(400, "Bad Request: strings must be encoded in UTF-8")
            char = chr(code)
        else:
            while chr(self.at(end)).isascii() and chr(self.at(end)).isalpha():
                end += 1
            name = data[pos + 1 : end]
            if name not in _NAMED:
                if strict and name and self.at(end) == ord(";"):
                    entity = data[pos : end + 1].decode()
                    raise _error(f'Unsupported HTML entity "{entity}" at byte offset {pos}')
                return None
            char = _NAMED[name]
        return char, end + 1 if self.at(end) == ord(";") else end

    def parse(self) -> str:
        data, out = self.data, self.out
        stack: list[tuple[str, str]] = []  # open tags: (name, argument)
        i = 0
        size = len(data)
        while i < size:
            c = data[i]
            if c == ord("&"):
                decoded = self.entity(i, strict=True)
                if decoded is not None:
                    out.append(decoded[0])
                    i = decoded[1]
                    continue
            if c != ord("<"):
                j = i + 1
                while j < size and data[j] not in (ord("&"), ord("<")):
                    j += 1
                out.append(data[i:j].decode("utf-8", "replace"))
                i = j
                continue
            begin = i
            i += 1
            if self.at(i) != ord("/"):
                i = self._start_tag(begin, i, stack)
            else:
                i = self._end_tag(begin, i, stack)
        if stack:
            raise _error(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
        return "".join(out)

    def _start_tag(self, begin: int, i: int, stack: list[tuple[str, str]]) -> int:
        data = self.data
        while not self.space(i) and self.at(i) != ord(">"):
            i += 1
        if self.at(i) == 0:
            raise _error(f"Unclosed start tag at byte offset {begin}")
        tag = data[begin + 1 : i].decode("utf-8", "replace").lower()
        if tag not in SUPPORTED_TAGS:
            raise _error(f'Unsupported start tag "{tag}" at byte offset {begin}')
        argument = ""
        while self.at(i) != ord(">"):
            while self.at(i) != 0 and self.space(i):
                i += 1
            if self.at(i) == ord(">"):
                break
            name_begin = i
            while not self.space(i) and self.at(i) not in b"=>/\"'":
                i += 1
            name = data[name_begin:i].decode("utf-8", "replace")
            if not name:
                raise _error(f'Empty attribute name in the tag "{tag}" at byte offset {begin}')
            while self.at(i) != 0 and self.space(i):
                i += 1
            if self.at(i) != ord("="):
                if self.at(i) == 0:
                    raise _error(f'Unclosed start tag "{tag}" at byte offset {begin}')
                if tag == "blockquote" and name == "expandable":
                    argument = "1"
                continue
            i += 1
            while self.at(i) != 0 and self.space(i):
                i += 1
            if self.at(i) == 0:
                raise _error(f'Unclosed start tag "{tag}" at byte offset {begin}')
            if self.at(i) not in (ord("'"), ord('"')):
                token_begin = i
                while chr(self.at(i)).isascii() and (chr(self.at(i)).isalnum() or self.at(i) in b".-") and self.at(i):
                    i += 1
                value = data[token_begin:i].decode().lower()
                if not self.space(i) and self.at(i) != ord(">"):
                    raise _error(f"Unexpected end of name token at byte offset {token_begin}")
            else:
                quote = self.at(i)
                i += 1
                parts: list[str] = []
                while self.at(i) != quote and self.at(i) != 0:
                    if self.at(i) == ord("&"):
                        decoded = self.entity(i, strict=False)
                        if decoded is not None:
                            parts.append(decoded[0])
                            i = decoded[1]
                            continue
                    j = i + 1
                    while j < len(data) and data[j] not in (quote, ord("&")):
                        j += 1
                    parts.append(data[i:j].decode("utf-8", "replace"))
                    i = j
                if self.at(i) == quote:
                    i += 1
                value = "".join(parts)
            if self.at(i) == 0:
                raise _error(f"Unclosed start tag at byte offset {begin}")
            if tag == "a" and name == "href":
                argument = value
            elif tag == "code" and name == "class" and value.startswith("language-"):
                argument = value[9:]
            elif tag == "span" and name == "class" and value.startswith("tg-"):
                argument = value[3:]
            elif tag == "tg-emoji" and name == "emoji-id":
                argument = value
            elif tag == "blockquote" and name == "expandable":
                argument = "1"
            elif tag == "tg-time" and name == "format":
                argument = value
        if tag == "span" and argument != "spoiler":
            raise _error(f'Tag "span" must have class "tg-spoiler" at byte offset {begin}')
        if tag == "a" and not argument.strip():
            raise _error(f'Tag "a" must have an href attribute at byte offset {begin}')
        stack.append((tag, argument))
        return i + 1

    def _end_tag(self, begin: int, i: int, stack: list[tuple[str, str]]) -> int:
        data = self.data
        if not stack:
            raise _error(f"Unexpected end tag at byte offset {begin}")
        while not self.space(i) and self.at(i) != ord(">"):
            i += 1
        end_tag = data[begin + 2 : i].decode("utf-8", "replace").lower()
        while self.space(i) and self.at(i) != 0:
            i += 1
        if self.at(i) != ord(">"):
            raise _error(f"Unclosed end tag at byte offset {begin}")
        tag, argument = stack[-1]
        if end_tag and end_tag != tag:
            raise _error(f'Unmatched end tag at byte offset {begin}, expected "</{tag}>", found "</{end_tag}>"')
        if tag == "tg-emoji" and not (argument.isdigit() and int(argument) != 0):
            raise _error("Invalid custom emoji identifier specified")
        stack.pop()
        return i + 1


def visible_html(text: str) -> str:
    """Check Telegram-HTML like Telegram does and return the text it would display."""
    return _Parser(text).parse()
