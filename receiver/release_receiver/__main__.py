"""`python -m release_receiver`: the same as the `release-receiver` console script."""

from release_receiver.cli import main

if __name__ == "__main__":
    main()
