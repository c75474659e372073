"""model insight: a model's permutation importance, calibration report and training profile

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 06:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('models') as batch:
        batch.add_column(sa.Column('importance', sa.JSON(), nullable=True))
        batch.add_column(sa.Column('calibration', sa.JSON(), nullable=True))
        batch.add_column(sa.Column('profile', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('models') as batch:
        batch.drop_column('profile')
        batch.drop_column('calibration')
        batch.drop_column('importance')
