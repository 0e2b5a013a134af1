"""Speed measurements; run each as python -m bench.NAME."""
