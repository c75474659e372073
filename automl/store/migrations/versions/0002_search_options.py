"""search options: multilabel targets, search-space narrowing, budgets, refit, executions

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 12:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('jobs') as batch:
        batch.add_column(sa.Column('targets', sa.JSON(), nullable=True))
        batch.add_column(sa.Column('search_space', sa.JSON(), nullable=True))
        batch.add_column(sa.Column('executions_per_trial', sa.Integer(), server_default='1', nullable=False))
        batch.add_column(sa.Column('time_budget_s', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('target_score', sa.Float(), nullable=True))
        batch.add_column(sa.Column('refit', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch.add_column(sa.Column('stop_reason', sa.String(length=32), nullable=True))
    with op.batch_alter_table('models') as batch:
        batch.add_column(sa.Column('targets', sa.JSON(), nullable=True))
        batch.add_column(sa.Column('confusion_matrix', sa.JSON(), nullable=True))
        batch.add_column(sa.Column('refit', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch.add_column(sa.Column('supports_uncertainty', sa.Boolean(), server_default=sa.false(), nullable=False))
    # Epochs are keyed by execution too (executions_per_trial > 1 trains a trial several times).
    op.create_table('trial_epochs_v2',
    sa.Column('job_id', sa.String(length=32), nullable=False),
    sa.Column('trial_id', sa.String(length=32), nullable=False),
    sa.Column('execution', sa.Integer(), nullable=False),
    sa.Column('epoch', sa.Integer(), nullable=False),
    sa.Column('metrics', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('job_id', 'trial_id', 'execution', 'epoch')
    )
    op.execute(
        "INSERT INTO trial_epochs_v2 (job_id, trial_id, execution, epoch, metrics, created_at) "
        "SELECT job_id, trial_id, 0, epoch, metrics, created_at FROM trial_epochs"
    )
    op.drop_table('trial_epochs')
    op.rename_table('trial_epochs_v2', 'trial_epochs')


def downgrade() -> None:
    op.create_table('trial_epochs_v1',
    sa.Column('job_id', sa.String(length=32), nullable=False),
    sa.Column('trial_id', sa.String(length=32), nullable=False),
    sa.Column('epoch', sa.Integer(), nullable=False),
    sa.Column('metrics', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('job_id', 'trial_id', 'epoch')
    )
    op.execute(
        "INSERT INTO trial_epochs_v1 (job_id, trial_id, epoch, metrics, created_at) "
        "SELECT job_id, trial_id, epoch, metrics, created_at FROM trial_epochs WHERE execution = 0"
    )
    op.drop_table('trial_epochs')
    op.rename_table('trial_epochs_v1', 'trial_epochs')
    with op.batch_alter_table('models') as batch:
        for column in ('supports_uncertainty', 'refit', 'confusion_matrix', 'targets'):
            batch.drop_column(column)
    with op.batch_alter_table('jobs') as batch:
        for column in ('stop_reason', 'refit', 'target_score', 'time_budget_s', 'executions_per_trial',
                       'search_space', 'targets'):
            batch.drop_column(column)
