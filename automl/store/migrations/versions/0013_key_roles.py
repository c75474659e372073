"""scoped keys: a role (predict, read, write, admin) and an optional expiry instead of the admin flag

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01 10:45:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('api_keys') as batch:
        batch.add_column(sa.Column('role', sa.String(16), server_default='write', nullable=False))
        batch.add_column(sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE api_keys SET role = 'admin' WHERE admin")
    with op.batch_alter_table('api_keys') as batch:
        batch.drop_column('admin')


def downgrade() -> None:
    with op.batch_alter_table('api_keys') as batch:
        batch.add_column(sa.Column('admin', sa.Boolean(), server_default=sa.false(), nullable=False))
    op.execute("UPDATE api_keys SET admin = (role = 'admin')")
    with op.batch_alter_table('api_keys') as batch:
        batch.drop_column('expires_at')
        batch.drop_column('role')
