"""Create (or repair) the MES's own MinIO user with read-write access, enabled; idempotent.

The services do not use MinIO's root user: an incident (deploy/local/incident s3-deny) or a
real credential problem can disable a service's user, never the root one.

    MINIO_ENDPOINT=127.0.0.1:9000 MINIO_ROOT_USER=... MINIO_ROOT_PASSWORD=... \
    S3_ACCESS_KEY=mes-service S3_SECRET_KEY=... python deploy/minio/service_user.py
"""

from __future__ import annotations

import json
import os

from minio.credentials import StaticProvider
from minio.minioadmin import MinioAdmin


def main() -> None:
    env = os.environ
    admin = MinioAdmin(
        endpoint=env.get("MINIO_ENDPOINT", "127.0.0.1:9000"),
        credentials=StaticProvider(env["MINIO_ROOT_USER"], env["MINIO_ROOT_PASSWORD"]),
        secure=False,
    )
    user = env.get("S3_ACCESS_KEY", "mes-service")
    admin.user_add(user, env["S3_SECRET_KEY"])  # sets the secret again if the user exists
    # Attaching a policy the user already has is an error in MinIO's admin API.
    if "readwrite" not in json.loads(admin.user_info(user)).get("policyName", "").split(","):
        admin.attach_policy(["readwrite"], user=user)
    admin.user_enable(user)
    print(f"MinIO user {user}: enabled, policy readwrite")


if __name__ == "__main__":
    main()
