"""best model so far: a job's best_model_id, and interim models (a running search's best trial as it is)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 07:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('jobs') as batch:
        batch.add_column(sa.Column('best_model_id', sa.String(32), nullable=True))
    with op.batch_alter_table('models') as batch:
        batch.add_column(sa.Column('interim', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch.add_column(sa.Column('trial_id', sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('models') as batch:
        batch.drop_column('trial_id')
        batch.drop_column('interim')
    with op.batch_alter_table('jobs') as batch:
        batch.drop_column('best_model_id')
