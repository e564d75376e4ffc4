# frozen_string_literal: true

# Derived state from Ruby: a derivation, a scatter, a relation and the schema graph.
#   rake compile && ruby -Ilib examples/derived_state.rb
require "igniter-ledger"
require "tmpdir"

Dir.mktmpdir do |dir|
  wal = File.join(dir, "blog.wal")
  store = Igniter::Ledger::LedgerStore.open(wal)

  # Derivation: recomputed from the latest matching facts after each write.
  store.register_derivation(source_store: :comments, source_filters: { status: :published },
                            target_store: :stats, target_key: "published",
                            rule: ->(facts) { { count: facts.size } })
  # Scatter: each comment folded into its article's record.
  store.register_scatter(source_store: :comments, partition_by: :article_id, target_store: :per_article,
                         rule: ->(_article, existing, _fact) { { comments: (existing ? existing[:comments] : 0) + 1 } })
  # Relation: a grow-only index article_id -> comment keys, kept in :__rel_article_comments.
  store.register_relation(:article_comments, source: :comments, partition: :article_id, target: :articles)

  c1 = store.write(store: :comments, key: "c1", value: { article_id: "a1", body: "First!", status: :published })
  t = store.write(store: :comments, key: "c2", value: { article_id: "a1", body: "Draft", status: :draft }).transaction_time
  store.write(store: :comments, key: "c2", value: { article_id: "a1", body: "Second", status: :published })

  p store.read(store: :stats, key: "published")
  p store.read(store: :per_article, key: "a1")
  p store.resolve(:article_comments, from: "a1").map { |v| v[:body] }
  p store.resolve(:article_comments, from: "a1", as_of: t).map { |v| v[:body] }
  d = store.read_fact(store: :per_article, key: "a1").derivation
  p d.slice(:kind, :rule)
  p store.history(store: :per_article, key: "a1").first.derivation[:sources] == [c1.id]
  p store.schema_graph.derivation_snapshot
  p store.schema_graph.relation_snapshot
  p store.lineage(store: :comments, key: "c1")[:derived_by]
  store.close

  # After a reopen, registering the rules again reconciles: a derived write lost to a
  # crash is redone; an intact state writes nothing.
  reopened = Igniter::Ledger::LedgerStore.open(wal)
  before = reopened.fact_count
  reopened.register_relation(:article_comments, source: :comments, partition: :article_id, target: :articles)
  p [before, reopened.fact_count, reopened.resolve(:article_comments, from: "a1").size]
  reopened.close
end
