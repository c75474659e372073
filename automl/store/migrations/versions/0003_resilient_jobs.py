"""resilient jobs: lanes for parallel trials, progress events, idempotency keys, cancel, attempts

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 15:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('jobs') as batch:
        batch.add_column(sa.Column('parallel_trials', sa.Integer(), server_default='1', nullable=False))
        batch.add_column(sa.Column('cancel_requested', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch.add_column(sa.Column('idempotency_key', sa.String(length=255), nullable=True))
        batch.add_column(sa.Column('request_fingerprint', sa.String(length=64), nullable=True))
        batch.add_column(sa.Column('oracle_version', sa.Integer(), server_default='0', nullable=False))
        batch.create_unique_constraint('uq_jobs_idempotency_key', ['idempotency_key'])
    with op.batch_alter_table('trials') as batch:
        batch.add_column(sa.Column('attempts', sa.Integer(), server_default='0', nullable=False))
        batch.add_column(sa.Column('lane', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('worker', sa.String(length=128), nullable=True))
    op.create_table('job_lanes',
    sa.Column('job_id', sa.String(length=32), nullable=False),
    sa.Column('lane', sa.Integer(), nullable=False),
    sa.Column('generation', sa.Integer(), nullable=False),
    sa.Column('done', sa.Boolean(), nullable=False),
    sa.Column('owner', sa.String(length=128), nullable=True),
    sa.Column('lease_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('trial_id', sa.String(length=32), nullable=True),
    sa.Column('release_requested', sa.Boolean(), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('job_id', 'lane')
    )
    op.create_table('job_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('job_id', sa.String(length=32), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_job_events_job_id', 'job_events', ['job_id'])
    # Jobs queued before this revision ran as one chain: give each its lane 0.
    op.execute(
        "INSERT INTO job_lanes (job_id, lane, generation, done, release_requested, sent_at) "
        "SELECT id, 0, 0, false, false, created_at FROM jobs WHERE state IN ('queued', 'running')"
    )


def downgrade() -> None:
    op.drop_index('ix_job_events_job_id', table_name='job_events')
    op.drop_table('job_events')
    op.drop_table('job_lanes')
    with op.batch_alter_table('trials') as batch:
        for column in ('worker', 'lane', 'attempts'):
            batch.drop_column(column)
    with op.batch_alter_table('jobs') as batch:
        batch.drop_constraint('uq_jobs_idempotency_key', type_='unique')
        for column in ('oracle_version', 'request_fingerprint', 'idempotency_key', 'cancel_requested',
                       'parallel_trials'):
            batch.drop_column(column)
