# Sourced: points each object store's usual environment variables at the servers
# scripts/ensure-objstores.sh starts (moto for S3, Azurite for Azure Blob), so that mttx
# reaches them as a user's mttx reaches the real stores.
export AWS_ENDPOINT_URL=http://127.0.0.1:${MTTX_MOTO_PORT:-5390} AWS_ALLOW_HTTP=true \
    AWS_ACCESS_KEY_ID=mttx AWS_SECRET_ACCESS_KEY=mttx AWS_REGION=us-east-1
export AZURE_STORAGE_USE_EMULATOR=true \
    AZURITE_BLOB_STORAGE_URL=http://127.0.0.1:${MTTX_AZURITE_PORT:-10000}
