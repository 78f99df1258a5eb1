"""Parameter paragraphs written once (sclatent._docs) and where they are filled in."""

import inspect

import pytest

import sclatent as sl
from sclatent._docs import PARAMETERS, fill, parameter_section, shared_parameters


def test_placeholders_become_indented_entries_and_unknown_ones_fail():
    doc = "Summary.\n\n    Parameters\n    ----------\n    own\n        Its own text.\n    {lr}\n"
    doc += "    {stopping}\n"
    filled = fill(doc, {})
    assert "    lr\n        Adam learning rate.\n" in filled
    assert filled.index("early_stopping") < filled.index("patience") < filled.index("progress")
    assert "{" not in filled
    assert fill("    {own}\n", {"own": "own\n    Given."}) == "    own\n        Given.\n"
    with pytest.raises(KeyError):
        fill("    {no_such_parameter}\n", {})


def test_a_decorated_function_documents_the_shared_paragraph():
    @shared_parameters
    def tool(batch_size: int = 1):
        """Do it.

        Parameters
        ----------
        {batch_size}
        """

    assert parameter_section(tool) == f"batch_size\n    {PARAMETERS['batch_size']}"


def test_each_paragraph_is_written_once_and_reaches_models_tools_and_the_command_line():
    from sclatent.cli import build_parser

    text = PARAMETERS["validation_fraction"]
    for documented in (
        sl.models.SCVAE,
        sl.models.GroupEnc,
        sl.models.SamplingAE,
        sl.tl.scvae,
        sl.tl.groupenc,
    ):
        assert inspect.getdoc(documented).count(text) == 1
    sub = build_parser().get_default("sub_commands")["groupenc"]
    helps = {action.dest: action.help for action in sub._actions}
    assert helps["validation_fraction"].startswith(text.rstrip("."))
    assert helps["gamma"].startswith("Cells per group")  # the model's own paragraph


def test_a_docstring_without_parameters_cannot_be_shared():
    with pytest.raises(ValueError, match="no Parameters section"):
        parameter_section(len)
