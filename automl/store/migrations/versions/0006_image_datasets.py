"""image datasets: the archive's summary, a job's image size and precision, a model's kind

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 10:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('datasets') as batch:
        batch.add_column(sa.Column('images', sa.JSON(), nullable=True))
    with op.batch_alter_table('jobs') as batch:
        batch.add_column(sa.Column('image_size', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('mixed_precision', sa.Boolean(), server_default=sa.false(), nullable=False))
    with op.batch_alter_table('models') as batch:
        batch.add_column(sa.Column('kind', sa.String(length=16), server_default='tabular', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('models') as batch:
        batch.drop_column('kind')
    with op.batch_alter_table('jobs') as batch:
        batch.drop_column('mixed_precision')
        batch.drop_column('image_size')
    with op.batch_alter_table('datasets') as batch:
        batch.drop_column('images')
