"""teams and API keys: every dataset, job, model and alias belongs to a team; keys stored hashed

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22 12:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

OWNED = ('datasets', 'jobs', 'models')


def upgrade() -> None:
    op.create_table('api_keys',
    sa.Column('id', sa.String(length=8), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('team', sa.String(length=64), nullable=False),
    sa.Column('admin', sa.Boolean(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_api_keys_team', 'api_keys', ['team'])
    for table in OWNED:  # what existed before teams belongs to the default team
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column('team', sa.String(length=64), server_default='default', nullable=False))
        op.create_index(f'ix_{table}_team', table, ['team'])
    # Alias names become per team: a new table keyed by (team, name), the rows copied over.
    op.create_table('aliases_by_team',
    sa.Column('team', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('model_id', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['model_id'], ['models.id']),
    sa.PrimaryKeyConstraint('team', 'name')
    )
    op.execute("INSERT INTO aliases_by_team (team, name, model_id, created_at, updated_at) "
               "SELECT 'default', name, model_id, created_at, updated_at FROM aliases")
    op.drop_index('ix_aliases_model_id', table_name='aliases')
    op.drop_table('aliases')
    op.rename_table('aliases_by_team', 'aliases')
    op.create_index('ix_aliases_model_id', 'aliases', ['model_id'])


def downgrade() -> None:
    op.create_table('aliases_by_name',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('model_id', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['model_id'], ['models.id']),
    sa.PrimaryKeyConstraint('name')
    )
    op.execute("INSERT INTO aliases_by_name (name, model_id, created_at, updated_at) "
               "SELECT name, MIN(model_id), MIN(created_at), MAX(updated_at) FROM aliases GROUP BY name")
    op.drop_index('ix_aliases_model_id', table_name='aliases')
    op.drop_table('aliases')
    op.rename_table('aliases_by_name', 'aliases')
    op.create_index('ix_aliases_model_id', 'aliases', ['model_id'])
    for table in reversed(OWNED):
        op.drop_index(f'ix_{table}_team', table_name=table)
        with op.batch_alter_table(table) as batch:
            batch.drop_column('team')
    op.drop_index('ix_api_keys_team', table_name='api_keys')
    op.drop_table('api_keys')
