"""core, tokenizers and loaders stay importable without the TUI (textual and rich never loaded)."""

import subprocess
import sys


def test_core_does_not_import_textual_or_rich():
    code = (
        "import sys, fwdtui, fwdtui.core.model, fwdtui.core.sampling, fwdtui.loaders, fwdtui.tokenizers, "
        "fwdtui.loaders.gguf_loader, fwdtui.loaders.download, fwdtui.steptext, fwdtui.prompt\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('textual', 'rich')]\n"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
