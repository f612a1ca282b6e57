"""Client spans for AWS SDK calls (boto3/botocore), e.g. `S3.PutObject` to S3 or MinIO."""

from opentelemetry.instrumentation.botocore import BotocoreInstrumentor

from otel_kit._config.settings import Settings


def instrument(settings: Settings) -> None:
    BotocoreInstrumentor().instrument()
