// sluice-control-fake: the control plane's REST server over FakeBackend, for the Python tests
// (/metrics parsed by prometheus_client, sluicectl end to end) and for trying sluicectl by hand.
//
//   sluice-control-fake [--listen 127.0.0.1:0] [--metadata-dir DIR] [--seed]
//
// Prints "listening HOST:PORT" on stdout once it serves; stops on SIGTERM or SIGINT.
#include <signal.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "control/fake_backend.h"
#include "control/file_store.h"
#include "control/rest_server.h"

using namespace sluice::control;

int main(int argc, char** argv) {
  std::string listen = "127.0.0.1:0", dir;
  bool seed = false;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--listen") && i + 1 < argc) listen = argv[++i];
    else if (!std::strcmp(argv[i], "--metadata-dir") && i + 1 < argc) dir = argv[++i];
    else if (!std::strcmp(argv[i], "--seed")) seed = true;
    else {
      std::fprintf(stderr, "usage: %s [--listen HOST:PORT] [--metadata-dir DIR] [--seed]\n", argv[0]);
      return 2;
    }
  }
  // Block the stop signals before any thread starts, so that only sigwait sees them.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  MemoryStore memory;
  std::unique_ptr<FileStore> file;
  if (!dir.empty()) {
    auto s = FileStore::Open(dir);
    if (!s.ok()) {
      std::fprintf(stderr, "%s\n", s.status().ToString().c_str());
      return 1;
    }
    file = std::move(*s);
  }
  MetadataStore& store = file ? static_cast<MetadataStore&>(*file) : memory;
  auto catalog = Catalog::Open(store, MetaOptions{});
  if (!catalog.ok()) {
    std::fprintf(stderr, "%s\n", catalog.status().ToString().c_str());
    return 1;
  }
  FakeBackend backend;
  ControlService service(**catalog, backend);
  if (seed) {
    std::vector<sluice::hwconf::QueueDecl> decls(3);
    decls[0].name = "orders";
    decls[0].type = sluice::hwconf::QueueType::kWork;
    decls[0].partitions = 2;
    decls[0].max_receive_count = 3;
    decls[0].dead_letter_queue = "orders-dlq";
    decls[1].name = "orders-dlq";
    decls[1].type = sluice::hwconf::QueueType::kWork;
    decls[2].name = "ticks";
    decls[2].partitions = 3;
    auto r = service.Bootstrap(decls);
    if (!r.ok()) {
      std::fprintf(stderr, "%s\n", r.status().ToString().c_str());
      return 1;
    }
  }
  if (auto st = service.PublishCurrent(); !st.ok()) return 1;
  RestServer server(service, {.listen = listen});
  if (auto st = server.Start(); !st.ok()) {
    std::fprintf(stderr, "%s\n", st.ToString().c_str());
    return 1;
  }
  std::printf("listening %s:%d\n", listen.substr(0, listen.rfind(':')).c_str(), server.port());
  std::fflush(stdout);
  int sig = 0;
  sigwait(&stop, &sig);
  server.Stop();
  return 0;
}
