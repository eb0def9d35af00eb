"""Structured JSON logs with the request or event id and the W3C traceparent of the work in hand."""

from __future__ import annotations

import logging
import sys

import structlog


def configure_logging(service_name: str, level: str = "INFO", json: bool = True) -> None:
    """Route stdlib and structlog records through one JSON renderer on stdout.

    Called from a service's lifespan (never at import). The request/event id and traceparent
    come from structlog's contextvars, bound by the HTTP middleware and the consumer.
    """
    shared_processors: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_service(service_name),
    ]
    renderer = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[*shared_processors, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared_processors,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiokafka logs every rebalance and metadata refresh at INFO; keep the signal.
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, root.level))
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # The RED metrics and our own request log replace uvicorn's access log.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)


def _add_service(service_name: str) -> structlog.types.Processor:
    def processor(_logger, _method, event_dict):
        event_dict.setdefault("service", service_name)
        return event_dict

    return processor


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.stdlib.get_logger(name)
