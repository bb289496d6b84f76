"""Infrastructure the stages never see: ``logs`` (text/JSON logging), ``metrics`` (Prometheus),
``memory`` (RSS bounds), ``signals`` (SIGTERM/SIGINT to a stop flag) and ``healthd`` (the health
endpoint)."""
