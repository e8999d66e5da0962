"""The command line stays quick to start: help, version and weights do not pay for importing torch."""

import subprocess
import sys


def test_importing_the_cli_does_not_import_torch():
    code = "import sys, mmfuse_cli.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_degradation_is_usable_without_torch_and_builds_its_operator_on_demand():
    code = (
        "import sys; from mmfuse_cli.degradation.spec import Degradation; d = Degradation(blur=1.5, scale=2);"
        "from mmfuse_cli.degradation.resolve import SourceRequest; SourceRequest(blur=1.5, scale=2);"
        "assert 'torch' not in sys.modules;"
        "from mmfuse_cli.degradation.operators import build_operator; op = build_operator(d); print(type(op).__name__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "Composite"
