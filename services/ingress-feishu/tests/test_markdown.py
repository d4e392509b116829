"""Splitting at Feishu's limit: boundaries, fences, nothing lost."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from codex_broker.ingress_feishu.markdown import post_content, split_text


def test_short_text_is_one_chunk() -> None:
    assert split_text("hello") == ["hello"]
    assert split_text("   \n") == []


def test_splits_at_paragraphs_first() -> None:
    text = "a" * 60 + "\n\n" + "b" * 60
    assert split_text(text, 100) == ["a" * 60, "b" * 60]


def test_code_fence_is_closed_and_reopened() -> None:
    code = "\n".join(f"line {i}" for i in range(40))
    text = f"intro\n\n```python\n{code}\n```\n\nafter"
    chunks = split_text(text, 120)
    assert all(len(c) <= 120 for c in chunks)
    for chunk in chunks:
        assert chunk.count("```") % 2 == 0, chunk
    assert chunks[1].startswith("```python")


def test_long_word_is_hard_cut() -> None:
    chunks = split_text("x" * 250, 100)
    assert [len(c) for c in chunks] == [96, 96, 58]


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.sampled_from("ab \n`"), min_size=1, max_size=900))
def test_chunks_respect_the_limit_and_keep_the_words(text: str) -> None:
    chunks = split_text(text, 80)
    assert all(len(c) <= 80 for c in chunks)
    original = [w for w in text.replace("`", "").split() if w]
    kept = [w for w in "\n".join(chunks).replace("`", "").split() if w]
    # words may be cut at a hard split, but no character of a word is lost
    assert "".join(kept) == "".join(original)


def test_post_content_uses_the_markdown_element() -> None:
    assert post_content("**b**") == {"zh_cn": {"title": "", "content": [[{"tag": "md", "text": "**b**"}]]}}
