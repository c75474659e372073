"""aliases: stable names for models

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 16:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('aliases',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('model_id', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['model_id'], ['models.id']),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_index('ix_aliases_model_id', 'aliases', ['model_id'])


def downgrade() -> None:
    op.drop_index('ix_aliases_model_id', table_name='aliases')
    op.drop_table('aliases')
