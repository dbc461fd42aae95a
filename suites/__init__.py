"""Built-in suite definitions: one YAML per suite plus one loader module per benchmark format.

The constants below are the YAML paths that tmpbench/catalog.py registers in the SUITES registry;
:func:`tmpbench.suites.core.load_suite` parses a YAML on first use.
"""

from pathlib import Path

SUITES_DIR = Path(__file__).resolve().parent

SHAPES_T2I = SUITES_DIR / "shapes-t2i.yaml"
SHAPES_EDIT = SUITES_DIR / "shapes-edit.yaml"
GENEVAL = SUITES_DIR / "geneval.yaml"
ONEIG = SUITES_DIR / "oneig.yaml"
ONEIG_ZH = SUITES_DIR / "oneig-zh.yaml"
IMGEDIT = SUITES_DIR / "imgedit.yaml"
GEDIT = SUITES_DIR / "gedit.yaml"
GEDIT_CN = SUITES_DIR / "gedit-cn.yaml"
