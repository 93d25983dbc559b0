"""docs/architecture.md keeps one paragraph per module of the package.

A paragraph of the module map starts with the module's path in bold code (``**`frptw/x.py`**``).
A new module without one, or a paragraph left behind by a removed or renamed module, fails
here, naming it.
"""

import os
import re
from typing import List, Set

from twisted.trial.unittest import SynchronousTestCase

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: The Python code the map covers: the package and its twistd dropin.
PACKAGES = ("frptw", os.path.join("twisted", "plugins"))
HEADING = re.compile(r"\*\*`([^`]+\.py)`\*\*")


def modules() -> List[str]:
    """Every Python module under :data:`PACKAGES`, as a path relative to the checkout."""
    found = []
    for package in PACKAGES:
        for directory, subdirectories, files in os.walk(os.path.join(ROOT, package)):
            subdirectories[:] = [name for name in subdirectories if name != "__pycache__"]
            found.extend(os.path.relpath(os.path.join(directory, name), ROOT).replace(os.sep, "/")
                         for name in files if name.endswith(".py"))
    return sorted(found)


def documented() -> Set[str]:
    """The module paths docs/architecture.md gives a paragraph (bold code at a paragraph start)."""
    with open(os.path.join(ROOT, "docs", "architecture.md"), encoding="utf-8") as f:
        text = f.read()
    names: Set[str] = set()
    for paragraph in re.split(r"\n\s*\n", text):
        head = paragraph.split(" — ", 1)[0]
        if head.startswith("**`"):
            names.update(HEADING.findall(head))
    return names


class ModuleMapTests(SynchronousTestCase):
    def test_the_walk_finds_the_package(self) -> None:
        """The check below would pass on an empty list: the walk must see the known modules."""
        found = modules()
        for known in ("frptw/__init__.py", "frptw/transport/dataplane.py", "twisted/plugins/frptw_plugins.py"):
            self.assertIn(known, found)

    def test_every_module_has_a_paragraph(self) -> None:
        missing = [path for path in modules() if path not in documented()]
        self.assertEqual(missing, [], "modules without a paragraph in docs/architecture.md")

    def test_every_paragraph_names_a_module(self) -> None:
        stale = sorted(documented() - set(modules()))
        self.assertEqual(stale, [], "paragraphs in docs/architecture.md for modules that do not exist")
