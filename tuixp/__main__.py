"""``python -m tuixp``: the same command line as the ``tuixp`` console script."""

from tuixp.cli import main

if __name__ == "__main__":
    main()
