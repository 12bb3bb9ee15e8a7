#!/usr/bin/env python
import os
import sys

if sys.version_info < (3, 12):  # noqa: UP036 - say clearly why an old interpreter cannot run this
    sys.exit(f"Interconnect Hub needs Python 3.12 or newer (Django 6.1); this is {sys.version.split()[0]}.")


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hub.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
