"""Script entry for the index latency benchmark (same as `ragops bench index`)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from api.bench.index_latency import main  # noqa: E402

if __name__ == "__main__":
    main()
