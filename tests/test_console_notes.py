"""bench compare's footnotes: a shared long part of a note is said once, and a part is never cut inside brackets."""

from __future__ import annotations

from bench.cli.console import note_parts, repeated_parts, with_footnotes


def test_a_note_is_split_only_outside_brackets():
    """'hardware differs (cpu A -> B; isa x -> y)' became the footnotes '(cpu A -> B' and 'isa x -> y)'."""
    note = "hardware differs (cpu AMD EPYC -> Intel(R) Xeon(R) Processor; isa [avx2] -> [avx512]); timing untested"
    assert note_parts(note) == [
        "hardware differs (cpu AMD EPYC -> Intel(R) Xeon(R) Processor; isa [avx2] -> [avx512])",
        "timing untested",
    ]
    footnotes = repeated_parts([note, note])
    assert list(footnotes) == [note_parts(note)[0]]
    assert with_footnotes(note, footnotes) == "[1]; timing untested"
    assert note_parts("a; b") == ["a", "b"] and note_parts("") == [""]
