"""`python -m aios.codec_server`: the codec server's command, kept where docker-compose.yml and
users' own compose files call it; the server itself is aios/temporal/codec_server.py."""

import sys

from aios.temporal.codec_server import main

if __name__ == "__main__":
    sys.exit(main())
