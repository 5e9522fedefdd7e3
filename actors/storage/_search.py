"""Keyword ranking in SQL, shared by the tools' searches over documents and leads."""

from __future__ import annotations


def words_score(words_param: str, per_word: str) -> str:
    """SQL summing ``per_word`` (an expression of the word ``t``) over a list parameter of query words: one
    lambda, not one expression written out per word, which took DuckDB ~10-13 ms to plan for eight words."""
    return f"list_sum(list_transform({words_param}::VARCHAR[], t -> {per_word}))"
