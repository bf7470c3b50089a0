import subprocess
import sys


def test_missing_backend_names_the_extra_to_install():
    code = "import sys; sys.modules['tensorflow'] = None; import losslandscape"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode != 0
    assert "pip install 'losslandscape[tensorflow-cpu]'" in result.stderr
