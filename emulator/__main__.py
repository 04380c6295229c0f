import sys

from cli.emulator import main

if __name__ == "__main__":
    sys.exit(main())
