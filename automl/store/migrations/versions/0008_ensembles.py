"""ensembles: a job's ensemble size; a model's members, how the ensemble was chosen, the rows of its refit

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 16:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('jobs') as batch:
        batch.add_column(sa.Column('ensemble_size', sa.Integer(), server_default='1', nullable=False))
    with op.batch_alter_table('models') as batch:
        batch.add_column(sa.Column('members', sa.JSON(), nullable=True))
        batch.add_column(sa.Column('ensemble', sa.JSON(), nullable=True))
        batch.add_column(sa.Column('refit_rows', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('models') as batch:
        batch.drop_column('refit_rows')
        batch.drop_column('ensemble')
        batch.drop_column('members')
    with op.batch_alter_table('jobs') as batch:
        batch.drop_column('ensemble_size')
