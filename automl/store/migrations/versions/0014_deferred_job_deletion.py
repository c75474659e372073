"""deferred deletion: a running job asked to be deleted is cancelled, then deleted by the worker that ends it

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01 11:05:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('jobs') as batch:
        batch.add_column(sa.Column('delete_requested', sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('jobs') as batch:
        batch.drop_column('delete_requested')
