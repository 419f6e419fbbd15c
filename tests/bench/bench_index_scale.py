"""Index engines at scale (issue 16): the script form of `ragops bench index --scale`.

    python tests/bench/bench_index_scale.py --scale 100k --out /tmp/index_scale_100k.json
    python tests/bench/bench_index_scale.py --scale 1m --engines "faiss flat,faiss ivfpq"
    python tests/bench/bench_index_scale.py --scale 2000 --queries 40     # smoke size

Real all-MiniLM-L6-v2 embeddings of real text (cached under data/bench-cache/; embed
ahead with `python -m api.bench.scale_corpus --embed 100000`), FAISS flat as the baseline
of every ratio; see `api.bench.index_scale` for what is measured and how.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from api.bench.index_scale import main  # noqa: E402

if __name__ == "__main__":
    main()
