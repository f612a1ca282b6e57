"""Values the shop test service records and the collector must redact before Jaeger sees them."""

SECRET_VALUES = {
    "customer.email": "alice@example.com",
    "payment.card": "4111111111111111",
    "auth.password": "hunter2-not-for-jaeger",
    "url.full": "https://orders.s3.amazonaws.com/o.pdf?X-Amz-Signature=sigv4-not-for-jaeger",
    "url.original": "https://rates.example.com/v1/eur?access_token=oauth-not-for-jaeger&day=2026-11-22",
    "db.query.text": "SELECT * FROM customers WHERE note = 'literal-not-for-jaeger'",
}
