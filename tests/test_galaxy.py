import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

GALAXY = Path(__file__).resolve().parents[1] / "galaxy"
TOOLS = sorted(GALAXY.glob("sclatent_*.xml"))


def test_one_wrapper_per_tool_with_tests_on_bundled_data():
    assert [t.stem for t in TOOLS] == [f"sclatent_{n}" for n in ("ae_sampling", "groupenc", "rnx", "scvae")]
    for tool in TOOLS:
        root = ET.parse(tool).getroot()
        assert root.find("command").text.strip().startswith(f"sclatent {tool.stem[9:].replace('_', '-')} ")
        tests = root.findall("tests/test")
        assert tests
        for test in tests:
            data = test.find("param[@name='input']").get("value")
            assert (GALAXY / "test-data" / data).exists()


@pytest.mark.skipif(shutil.which("planemo") is None, reason="planemo is not installed")
def test_planemo_lint():
    done = subprocess.run(
        ["planemo", "lint", "--fail_level", "warn", str(GALAXY)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
