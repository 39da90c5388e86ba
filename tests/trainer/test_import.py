import os
import subprocess
import sys


def test_trainer_imports_without_django_or_torch():
    code = (
        "import sys, trainer, trainer.config, trainer.data, trainer.models, trainer.train, "
        "trainer.evaluate\n"
        "assert 'django' not in sys.modules, 'django imported'\n"
        "assert 'torch' not in sys.modules, 'torch imported at import time'\n"
        "assert 'transformers' not in sys.modules, 'transformers imported at import time'\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
