# frozen_string_literal: true

require_relative "spec_helper"
require_relative "support/cdp"

# The status page at GET / in headless Chromium (Debian's chromium, which .ci/run
# installs): it loads, shows the server's status, and shows a fact written after it
# opened (through the SSE live tail). Two pages: the Rust server's own (StoreServer's
# default engine), and HTTPAdapter's Rack app served over the Rust HTTP listener
# (NativeHTTPServer, as the Ruby engine's start_with_adapters serves it). The
# screenshots are written to target/browser/ (or $BROWSER_SCREENSHOT, with the page's
# name added) and their paths printed.
RSpec.describe "the status page in a browser" do
  before { skip "no chromium installed (apt-get install chromium)" unless CDP.chromium }

  def eval_text(browser, selector)
    browser.eval("(document.querySelector(#{selector.to_json}) || {}).textContent")
  end

  def tail_text(browser)
    browser.eval("Array.from(document.querySelectorAll('#tail li')).map(e => e.textContent).join('\\n')")
  end

  def screenshot(browser, name)
    base = ENV["BROWSER_SCREENSHOT"]
    shot = base ? base.sub(/(\.png)?\z/, "-#{name}.png") : File.join(REPO_ROOT, "target", "browser", "#{name}.png")
    FileUtils.mkdir_p(File.dirname(shot))
    browser.screenshot(shot)
    expect(File.binread(shot, 8)).to eq("\x89PNG\r\n\x1A\n".b)
    puts "\n  status page screenshot: #{shot}"
  end

  def with_page(engine)
    dir = Dir.mktmpdir("ledger-browser")
    server = Igniter::Ledger::StoreServer.new(engine: engine, address: "127.0.0.1:0",
                                              logger: Igniter::Ledger::ServerLogger.new(nil))
    server.start_with_adapters(http_port: 0)
    server.store.write(store: :tasks, key: "before-open", value: { n: 1 })
    browser = CDP.new("http://127.0.0.1:#{server.adapters.first.port}/", profile_dir: dir)
    begin
      yield server, browser
    ensure
      browser.close
      server.stop
    end
  ensure
    # chromium's helper processes may still be writing the profile for a moment
    10.times do
      FileUtils.rm_rf(dir)
      break unless File.exist?(dir)

      sleep 0.3
    end
  end

  it "the Rust server's page loads, shows the status and a fact written after it opened, and is screenshotted" do
    with_page(:native) do |server, browser|
      expect(browser.wait_until { browser.eval("document.title") == "igniter-ledger" && eval_text(browser, "#summary").to_s.include?("status: ready") }).to be true
      expect(eval_text(browser, "#fact-count")).to eq("1")
      browser.wait_until { server.stream_count.positive? } # the page's EventSource is open
      fact = server.store.write(store: :tasks, key: "after-open", value: { n: 2 })
      tail = browser.wait_until do
        text = tail_text(browser)
        text if text.to_s.include?(fact.id)
      end
      expect(tail).to include("tasks/after-open #{fact.id}")
      browser.wait_until { eval_text(browser, "#fact-count") == "2" }
      screenshot(browser, "status-page")
    end
  end

  it "HTTPAdapter's Rack page over the Rust HTTP listener loads, shows the status and a fact written after it opened" do
    with_page(:ruby) do |server, browser|
      expect(server.adapters.first.instance_variable_get(:@server)).to be_a(Igniter::Ledger::NativeHTTPServer)
      expect(browser.wait_until { browser.eval("document.title") == "igniter-ledger" && eval_text(browser, "#s-status") == "ready" }).to be true
      browser.wait_until { server.stream_count.positive? } # the page's EventSource is open
      fact = server.store.write(store: :tasks, key: "after-open", value: { n: 2 })
      tail = browser.wait_until do
        text = tail_text(browser)
        text if text.to_s.include?(fact.id)
      end
      expect(tail).to include("tasks/before-open")
      expect(tail).to include("tasks/after-open #{fact.id}")
      browser.wait_until { eval_text(browser, "#s-facts") == "2" }
      screenshot(browser, "rack-status-page")
    end
  end
end
