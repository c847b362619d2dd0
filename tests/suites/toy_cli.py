"""`nightbench` with the toy suite known to the catalog, for tests that need a separate process."""

import sys

from nightbench.suites import catalog, cli

catalog.CATALOG.entries["toy"] = "tests.suites.toy_suite"

if __name__ == "__main__":
    sys.exit(cli.main())
