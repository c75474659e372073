"""job options: the pass-through search options in one JSON column, so a new option needs no migration

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 03:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

# The columns folded into ``options`` (see automl.search.options), with their types for the way back.
FOLDED = {
    'executions_per_trial': (sa.Integer(), '1'),
    'target_score': (sa.Float(), None),
    'refit': (sa.Boolean(), sa.false()),
    'ensemble_size': (sa.Integer(), '1'),
    'mixed_precision': (sa.Boolean(), sa.false()),
}


def _jobs(*columns: str) -> sa.Table:
    return sa.table('jobs', sa.column('id', sa.String()), sa.column('options', sa.JSON()),
                    *(sa.column(name, FOLDED[name][0]) for name in columns))


def upgrade() -> None:
    with op.batch_alter_table('jobs') as batch:
        batch.add_column(sa.Column('options', sa.JSON(), nullable=True))
    jobs = _jobs(*FOLDED)
    connection = op.get_bind()
    for row in connection.execute(sa.select(jobs.c.id, *(jobs.c[name] for name in FOLDED))).mappings().all():
        options = {name: row[name] for name in FOLDED}
        options['refit'] = bool(options['refit'])
        options['mixed_precision'] = bool(options['mixed_precision'])
        connection.execute(jobs.update().where(jobs.c.id == row['id']).values(options=options))
    with op.batch_alter_table('jobs') as batch:
        for name in FOLDED:
            batch.drop_column(name)


def downgrade() -> None:
    with op.batch_alter_table('jobs') as batch:
        for name, (kind, default) in FOLDED.items():
            batch.add_column(sa.Column(name, kind, nullable=default is None, server_default=default))
    jobs = _jobs(*FOLDED)
    connection = op.get_bind()
    for row in connection.execute(sa.select(jobs.c.id, jobs.c.options)).mappings().all():
        stored = row['options'] or {}
        values = {name: stored[name] for name in FOLDED if name in stored}
        if values:
            connection.execute(jobs.update().where(jobs.c.id == row['id']).values(**values))
    with op.batch_alter_table('jobs') as batch:
        batch.drop_column('options')
