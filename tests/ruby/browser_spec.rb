# frozen_string_literal: true

require_relative "spec_helper"
require_relative "support/cdp"

# The status page at GET / in headless Chromium (Debian's chromium, which .ci/run
# installs): it loads, shows the server's status, and shows a fact written after it
# opened (through the SSE live tail). The screenshot is written to
# target/browser/status-page.png (or $BROWSER_SCREENSHOT) and its path printed.
RSpec.describe "the status page in a browser" do
  before { skip "no chromium installed (apt-get install chromium)" unless CDP.chromium }

  it "loads, shows the status and a fact written after it opened, and is screenshotted" do
    Dir.mktmpdir("ledger-browser") do |dir|
      server = Igniter::Ledger::StoreServer.new(address: "127.0.0.1:0", logger: Igniter::Ledger::ServerLogger.new(nil))
      server.start_with_adapters(http_port: 0)
      server.store.write(store: :tasks, key: "before-open", value: { n: 1 })
      browser = CDP.new("http://127.0.0.1:#{server.adapters.first.port}/", profile_dir: dir)
      begin
        expect(browser.wait_until { browser.eval("document.title") == "igniter-ledger" && browser.eval("document.getElementById('s-status').textContent") == "ready" }).to be true
        browser.wait_until { server.changefeed.subscriber_count.positive? } # the page's EventSource is open
        fact = server.store.write(store: :tasks, key: "after-open", value: { n: 2 })
        tail = browser.wait_until do
          text = browser.eval("Array.from(document.querySelectorAll('#tail li')).map(e => e.textContent).join('\\n')")
          text if text.to_s.include?(fact.id)
        end
        expect(tail).to include("tasks/before-open")
        expect(tail).to include("tasks/after-open #{fact.id}")
        browser.wait_until { browser.eval("document.getElementById('s-facts').textContent") == "2" }

        shot = ENV["BROWSER_SCREENSHOT"] || File.join(REPO_ROOT, "target", "browser", "status-page.png")
        FileUtils.mkdir_p(File.dirname(shot))
        browser.screenshot(shot)
        expect(File.binread(shot, 8)).to eq("\x89PNG\r\n\x1A\n".b)
        puts "\n  status page screenshot: #{shot}"
      ensure
        browser.close
        server.stop
      end
    end
  end
end
