# frozen_string_literal: true

# Following the ledger from Ruby: a subscriber block runs on its own thread for every
# commit; a consumer resumes from a persisted cursor with store.changes(after:).
#
#   ruby -Ilib examples/follow_ledger.rb
require "igniter-ledger"
require "json"
require "tmpdir"

Dir.mktmpdir do |dir|
  path = File.join(dir, "shop.wal")
  feed = Igniter::Ledger::ChangefeedBuffer.new(subscriber_queue_size: 100)
  store = Igniter::Ledger::LedgerStore.open(path, changefeed: feed)

  done = Queue.new
  sub = feed.subscribe(stores: %i[orders payments]) do |event|
    puts "  #{event.cursor[:sequence]}: #{event.store} #{event.key} on #{Thread.current.name}"
    done << event.cursor
  end
  store.write(store: :orders, key: "o1", value: { status: :placed })
  store.write(store: :audit, key: "a1", value: { note: "not followed" })
  store.write(store: :payments, key: "p1", value: { amount: 42 })
  done.pop
  cursor = done.pop
  sub.close
  saved = JSON.generate(cursor) # persist it anywhere
  puts "persisted cursor #{saved}"
  store.write(store: :orders, key: "o1", value: { status: :shipped }) # while away
  store.close

  store = Igniter::Ledger::LedgerStore.open(path)
  resumed = store.changes(after: JSON.parse(saved), stores: %i[orders payments])
  resumed.each { |e| puts "  resumed: #{e.cursor[:sequence]}: #{e.store} #{e.key} #{e.fact.value}" }
  puts "to_h: #{resumed.first.to_h.slice(:type, :store, :key, :cursor)}"
  begin
    Igniter::Ledger::LedgerStore.new.tap { |s| s.write(store: :x, key: "k", value: 1) }.changes(after: JSON.parse(saved))
  rescue ArgumentError => e
    puts "another ledger's cursor: #{e.class}: #{e.message}"
  end
  store.close
end
