import sys
import unicodedata

from components.features.names import has_unsafe_characters


def test_unsafe_characters_are_exactly_unicodes_controls_and_surrogates() -> None:
    for code in range(sys.maxunicode + 1):
        char = chr(code)
        assert has_unsafe_characters(char) is (unicodedata.category(char) in ("Cc", "Cs")), hex(code)


def test_one_unsafe_character_anywhere_is_found() -> None:
    assert not has_unsafe_characters("user-123 é 😀")
    assert has_unsafe_characters("user\x00")
    assert has_unsafe_characters("\x85user")
    assert has_unsafe_characters("us\ud800er")
