"""The conversation settings (answer directly, the context's token budget) are editable like the
budgets: in the API's editable settings, with Settings' bounds, and on the Settings page."""

from __future__ import annotations

import gradio as gr
import pytest
from pydantic import ValidationError

from core.schemas import EditableSettings
from core.settings import Settings
from ui.app import SECTIONS, setting_input
from ui.pages import SETTING_FIELDS


def test_the_conversation_settings_are_on_the_settings_page_with_the_budgets_and_features() -> None:
    assert "context_token_budget" in SECTIONS["Budgets"] and "answer_directly" in SECTIONS["Features"]
    assert {"answer_directly", "context_token_budget"} <= set(SETTING_FIELDS)
    box, number = setting_input("answer_directly"), setting_input("context_token_budget")
    assert isinstance(box, gr.Checkbox) and isinstance(number, gr.Number) and number.precision == 0


def test_the_api_takes_them_within_the_settings_bounds() -> None:
    changed = EditableSettings(answer_directly=False, context_token_budget=0).model_dump(exclude_unset=True)
    assert changed == {"answer_directly": False, "context_token_budget": 0}
    assert Settings(**changed).context_token_budget == 0  # what live settings apply (model_copy of these)
    for wrong in (-1, 32_001):
        with pytest.raises(ValidationError):
            EditableSettings(context_token_budget=wrong)
