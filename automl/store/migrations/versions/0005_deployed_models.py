"""deployed models: loaded and warmed when a serving process starts

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 08:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('models') as batch:
        batch.add_column(sa.Column('deployed', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch.add_column(sa.Column('deployed_at', sa.DateTime(timezone=True), nullable=True))
    op.create_index('ix_models_deployed', 'models', ['deployed'])


def downgrade() -> None:
    op.drop_index('ix_models_deployed', table_name='models')
    with op.batch_alter_table('models') as batch:
        batch.drop_column('deployed_at')
        batch.drop_column('deployed')
