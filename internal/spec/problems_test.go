package spec

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

// base is a valid spec that problem cases extend.
const base = "app: shop\nprocess:\n  command: [./shop]\n"

// dockerBase is a valid docker spec that problem cases extend: its last
// line is in the docker section.
const dockerBase = "app: shop\nplatform: docker\ndocker:\n  image: shop:1\n"

// stackBase is a valid stack that problem cases extend: its last line is
// in its one service, web.
const stackBase = "app: shop\nservices:\n  web:\n    process: {command: [./web]}\n    router: {}\n"

// problemCases holds one broken spec per rule. want is a part of the
// message the case is about; the full report is in testdata/problems.golden.
var problemCases = []struct {
	name, yaml, want string
}{
	// The file as a whole.
	{"empty file", "", "the file is empty"},
	{"only a comment", "# nothing\n", "the file is empty"},
	{"not yaml", "app: [shop\n", "bad YAML"},
	{"tab indent", "app: shop\nprocess:\n\tcommand: [x]\n", "bad YAML"},
	{"top level list", "- app: shop\n", "want a mapping of keys, got a list"},
	{"top level string", "shop\n", "want a mapping of keys, got the string"},
	{"two documents", base + "---\n---\napp: other\n", "one YAML document"},
	{"anchor under unknown key", "defaults: &d {instances: 2}\n" + base, "unknown key"},
	{"too many problems", base + "params: [" + strings.Repeat("x, ", 60) + "x]\n", "and 11 more problems"},
	{"merge into process", "app: shop\nprocess:\n  <<: {instances: 2}\n  command: [x]\n", "merge keys (<<) are not supported"},
	{"alias bomb", aliasBomb(), "too many values"},
	{"nested alias bomb", nestedAliasBomb(), "counting each use of an alias"},
	{"x- section bomb", base + "x-pad: [" + strings.Repeat("a, ", MaxNodes) + "a]\n", "x- sections included"},
	{"file too large", base + "# " + strings.Repeat("x", MaxBytes) + "\n", "a spec may be at most 262144 bytes (256 KiB)"},

	// Keys and types.
	{"unknown key with suggestion", base + "platfrom: process\n", `did you mean "platform"`},
	{"unknown key camel case", base + "  stopTimeout: 5s\n", `did you mean "stop_timeout"`},
	{"unknown key far from any", base + "zzz: 1\n", "unknown key"},
	{"unknown hook event", base + "hooks:\n  before_instal: []\n", `did you mean "before_install"`},
	{"duplicate key", base + "app: other\n", "duplicate key (first at line 1)"},
	{"duplicate env", base + "  env: {A: x, A: y}\n", "duplicate key"},
	{"non-scalar key", base + "? [a]\n: 1\n", "want a plain key"},
	{"string got list", "app: [shop]\nprocess:\n  command: [x]\n", "want a string, got a list"},
	{"list got string", "app: shop\nprocess:\n  command: ./shop --flag\n", `want a list, got the string "./shop --flag"`},
	{"section got string", base + "health: fast\n", "want a mapping of keys"},
	{"int got string", base + "  instances: two\n", `want a whole number, got the string "two"`},
	{"int got float", base + "strategy:\n  steps: [{weight: 10.5}, {weight: 100}]\n", "want a whole number, got the number 10.5"},
	{"bool got yes", base + "router:\n  sticky: yes\n", `want true or false, got the string "yes"`},
	{"float got string", base + "checks:\n  rules: [{error_rate: {max: high}}]\n", "want a number"},
	{"float nan", base + "checks:\n  rules: [{error_rate: {max: .nan}}]\n", "want a finite number"},
	{"env value list", base + "  env: {A: [1]}\n", "want a string, got a list"},
	{"env not mapping", base + "  env: [A=1]\n", "want a mapping of names to values"},

	// Durations.
	{"duration without unit", base + "  stop_timeout: 30\n", "want a duration like 30s, 5m or 1h30m, got the number 30"},
	{"duration words", base + "  stop_timeout: 5 minutes\n", `bad duration "5 minutes"`},
	{"duration negative", base + "bake: -5s\n", "must not be negative"},
	{"duration zero", base + "  stop_timeout: 0s\n", "must be longer than 0s"},

	// app and platform.
	{"shell-style $PORT", "app: shop\nprocess:\n  command: [./shop, --port, $PORT]\n", `"$PORT" is not expanded: the command is not run by a shell; write ${PORT}`},
	{"app missing", "process:\n  command: [x]\n", "app: is required"},
	{"app upper case", "app: Shop\nprocess:\n  command: [x]\n", `bad app name "Shop"`},
	{"app underscore", "app: my_shop\nprocess:\n  command: [x]\n", "bad app name"},
	{"app leading hyphen", "app: -shop\nprocess:\n  command: [x]\n", "bad app name"},
	{"app too long", "app: " + strings.Repeat("a", 64) + "\nprocess:\n  command: [x]\n", "bad app name"},
	{"platform docker with a process section", base + "platform: docker\n", "process: given, but platform is docker (remove the section, or set platform: process)"},
	{"platform kubernetes", base + "platform: kubernetes\n", `platform "kubernetes" is not supported yet; only "process" and "docker" are`},
	{"platform kubernetes section", base + "kubernetes: {namespace: x}\n", "platform kubernetes is not supported yet"},
	{"platform unknown", base + "platform: proces\n", `unknown platform "proces" (did you mean "process"?)`},
	{"run_as with a space", base + "run_as: www data\n", `bad user "www data"`},
	{"run_as too long", base + "run_as: " + strings.Repeat("u", 33) + "\n", "bad user"},

	// process.
	{"command missing", "app: shop\n", "process.command: is required"},
	{"command empty list", "app: shop\nprocess:\n  command: []\n", "process.command: is required"},
	{"command empty program", "app: shop\nprocess:\n  command: [\"\", x]\n", "the program name is empty"},
	{"command unclosed variable", "app: shop\nprocess:\n  command: [x, \"127.0.0.1:${PORT\"]\n", "unclosed ${"},
	{"command bad variable", "app: shop\nprocess:\n  command: [x, \"${1X}\"]\n", `bad variable name "1X"`},
	{"dir absolute", base + "  dir: /srv/shop\n", "must be a path inside the bundle"},
	{"dir escapes", base + "  dir: a/../../b\n", "must be a path inside the bundle"},
	{"instances zero", base + "  instances: 0\n", "must be between 1 and 100, got 0"},
	{"instances too many", base + "  instances: 1000\n", "must be between 1 and 100, got 1000"},
	{"env bad name", base + "  env: {\"A-B\": x}\n", `bad env name "A-B"`},
	{"env PORT", base + "  env: {PORT: \"80\"}\n", "PORT is set by bluegreen"},
	{"env reserved prefix", base + "  env: {BG_X: y}\n", "reserved for bluegreen"},
	{"env bad template", base + "  env: {A: \"${\"}\n", "unclosed ${"},
	{"signal without SIG", base + "  stop_signal: TERM\n", `did you mean "SIGTERM"`},
	{"signal typo", base + "  stop_signal: SIGTREM\n", `did you mean "SIGTERM"`},
	{"signal kill", base + "  stop_signal: SIGKILL\n", "SIGKILL cannot be caught"},
	{"signal unknown", base + "  stop_signal: SIGFOO\n", `bad signal name "SIGFOO"`},

	// docker: the section and the platform.
	{"docker section missing", "app: shop\nplatform: docker\n", "bluegreen.yaml:2:11: docker: is required for platform docker"},
	{"docker section empty", "app: shop\nplatform: docker\ndocker: {}\n", "docker.image: is required"},
	{"docker section null", "app: shop\nplatform: docker\ndocker:\n", "docker: is required for platform docker"},
	{"docker section with default platform", base + "docker:\n  image: shop:1\n", "docker: given, but platform is process, the default (set platform: docker"},
	{"docker section with platform process", base + "platform: process\ndocker:\n  image: shop:1\n", "docker: given, but platform is process (set platform: docker"},
	{"docker section list", "app: shop\nplatform: docker\ndocker: [shop:1]\n", "want a mapping of keys, got a list"},
	{"docker unknown key", dockerBase + "  imag: shop:2\n", `did you mean "image"`},
	{"docker unknown key camel case", dockerBase + "  stopSignal: SIGINT\n", `did you mean "stop_signal"`},

	// docker: escapes refused by name.
	{"docker privileged", dockerBase + "  privileged: true\n", "bluegreen.yaml:5:3: docker.privileged: privileged containers are refused"},
	{"docker pid", dockerBase + "  pid: host\n", "docker.pid: sharing the host's process namespace is refused"},
	{"docker pid_mode", dockerBase + "  pid_mode: host\n", "docker.pid_mode: sharing the host's process namespace is refused"},
	{"docker ipc", dockerBase + "  ipc: host\n", "docker.ipc: sharing the host's IPC namespace is refused"},
	{"docker devices", dockerBase + "  devices: [/dev/sda]\n", "docker.devices: host devices are refused"},
	{"docker cap_add", dockerBase + "  cap_add: [SYS_ADMIN]\n", "docker.cap_add: adding capabilities is refused"},
	{"docker security_opt", dockerBase + "  security_opt: [seccomp=unconfined]\n", "docker.security_opt: security options are refused"},
	{"docker userns_mode", dockerBase + "  userns_mode: host\n", "docker.userns_mode: the user namespace mode is refused"},
	{"docker network_mode", dockerBase + "  network_mode: bridge\n", "docker.network_mode: network_mode is not used here"},
	{"docker ports", dockerBase + "  ports: [\"8080:80\"]\n", "docker.ports: published ports need a bridge network"},
	{"docker volumes_from", dockerBase + "  volumes_from: [db]\n", "mounting another container's volumes is refused"},
	{"docker auth password", dockerBase + "  auth: {username: ci, password: hunter2}\n", "docker.auth.password: the password is not written in the spec"},

	// docker: image.
	{"image missing", "app: shop\nplatform: docker\ndocker:\n  pull: never\n", "docker.image: is required: the image to run"},
	{"image upper case", "app: shop\nplatform: docker\ndocker:\n  image: Shop:1\n", `bluegreen.yaml:4:10: docker.image: bad image reference "Shop:1": invalid reference format: repository name (library/Shop) must be lowercase`},
	{"image empty tag", "app: shop\nplatform: docker\ndocker:\n  image: \"shop:\"\n", `bad image reference "shop:": invalid reference format`},
	{"image with a space", "app: shop\nplatform: docker\ndocker:\n  image: shop 1\n", `bad image reference "shop 1"`},
	{"image bad digest", "app: shop\nplatform: docker\ndocker:\n  image: shop@sha256:abc\n", `bad image reference "shop@sha256:abc"`},
	{"image id", "app: shop\nplatform: docker\ndocker:\n  image: sha256:" + strings.Repeat("ab", 32) + "\n", "is an image ID, not a reference"},
	{"image bare id", "app: shop\nplatform: docker\ndocker:\n  image: \"" + strings.Repeat("0", 64) + "\"\n", "is an image ID, not a reference"},
	{"image list", "app: shop\nplatform: docker\ndocker:\n  image: [shop]\n", "want a string, got a list"},
	{"image empty", "app: shop\nplatform: docker\ndocker:\n  image: \"\"\n", "docker.image: is required"},

	// docker: command and entrypoint, expanded like process.command.
	{"docker command string", dockerBase + "  command: serve --port 80\n", "want a list, got the string"},
	{"docker command shell-style $PORT", dockerBase + "  command: [serve, --port, $PORT]\n", `docker.command[2]: "$PORT" is not expanded`},
	{"docker command unclosed variable", dockerBase + "  command: [serve, \"${PORT\"]\n", "unclosed ${"},
	{"docker entrypoint empty program", dockerBase + "  entrypoint: [\"\", x]\n", "docker.entrypoint[0]: the program name is empty"},
	{"docker entrypoint bad variable", dockerBase + "  entrypoint: [\"${1X}\"]\n", `bad variable name "1X"`},
	{"docker entrypoint env style", dockerBase + "  env: {MODE: x}\n  entrypoint: [run, $MODE]\n", `docker.entrypoint[1]: "$MODE" is not expanded`},

	// docker: the settings shared with process.
	{"docker instances zero", dockerBase + "  instances: 0\n", "docker.instances: must be between 1 and 100, got 0"},
	{"docker instances too many", dockerBase + "  instances: 101\n", "docker.instances: must be between 1 and 100, got 101"},
	{"docker env PORT", dockerBase + "  env: {PORT: \"80\"}\n", "docker.env.PORT: PORT is set by bluegreen"},
	{"docker env reserved prefix", dockerBase + "  env: {BG_X: y}\n", "reserved for bluegreen"},
	{"docker env bad name", dockerBase + "  env: {\"A-B\": x}\n", `bad env name "A-B"`},
	{"docker env bad template", dockerBase + "  env: {A: \"${\"}\n", "unclosed ${"},
	{"docker signal kill", dockerBase + "  stop_signal: SIGKILL\n", "docker.stop_signal: SIGKILL cannot be caught"},
	{"docker signal without SIG", dockerBase + "  stop_signal: TERM\n", `did you mean "SIGTERM"`},
	{"docker stop timeout zero", dockerBase + "  stop_timeout: 0s\n", "docker.stop_timeout: must be longer than 0s"},
	{"docker stop timeout number", dockerBase + "  stop_timeout: 10\n", "want a duration"},
	{"docker param env clash", dockerBase + "  env: {URL: x}\nparams: [/a/URL]\n", "which docker.env sets too"},

	// docker: user and workdir.
	{"docker user with a space", dockerBase + "  user: \"www data\"\n", `docker.user: bad user "www data": want a uid, uid:gid`},
	{"docker user uid too big", dockerBase + "  user: \"4294967296\"\n", "bad user"},
	{"docker user empty group", dockerBase + "  user: \"1000:\"\n", "bad user"},
	{"docker user three parts", dockerBase + "  user: \"1:2:3\"\n", "bad user"},
	{"docker workdir relative", dockerBase + "  workdir: app\n", `docker.workdir: want an absolute path in the container, like /app, got "app"`},
	{"docker workdir empty", dockerBase + "  workdir: \"\"\n", "want an absolute path"},

	// docker: memory and cpus.
	{"docker memory below docker's", dockerBase + "  memory: 5m\n", `docker.memory: "5m" is below 6m, the least Docker accepts`},
	{"docker memory in bytes below", dockerBase + "  memory: 1024b\n", "is below 6m"},
	{"docker memory kubernetes units", dockerBase + "  memory: 512Mi\n", `bad size "512Mi" (write 512m): want a whole number and a unit of b, k, m or g`},
	{"docker memory GB", dockerBase + "  memory: 1GB\n", `(write 1g)`},
	{"docker memory terabytes", dockerBase + "  memory: 2t\n", `bad size "2t"`},
	{"docker memory without unit", dockerBase + "  memory: 268435456\n", `bad size "268435456"`},
	{"docker memory fraction", dockerBase + "  memory: 1.5g\n", `bad size "1.5g"`},
	{"docker memory words", dockerBase + "  memory: lots\n", `bad size "lots"`},
	{"docker memory empty", dockerBase + "  memory: \"\"\n", `bad size ""`},
	{"docker memory above the bound", dockerBase + "  memory: 2000g\n", "above the bound of 1024g"},
	{"docker memory huge number", dockerBase + "  memory: 99999999999999999999k\n", "bad size"},
	{"docker cpus zero", dockerBase + "  cpus: 0\n", "docker.cpus: must be between 0.01 and 256 CPUs (0.5 is half a CPU), got 0"},
	{"docker cpus negative", dockerBase + "  cpus: -1\n", "must be between 0.01 and 256"},
	{"docker cpus too fine", dockerBase + "  cpus: 0.001\n", "must be between 0.01 and 256"},
	{"docker cpus too many", dockerBase + "  cpus: 1000\n", "must be between 0.01 and 256"},
	{"docker cpus string", dockerBase + "  cpus: half\n", `want a number, got the string "half"`},

	// docker: volumes and tmpfs.
	{"docker volume rw", dockerBase + "  volumes: [\"config:/etc/shop:rw\"]\n", `docker.volumes[0]: "config:/etc/shop:rw": volumes are read-only`},
	{"docker volume other mode", dockerBase + "  volumes: [\"config:/etc/shop:z\"]\n", `unknown mode "z"; volumes are read-only`},
	{"docker volume absolute source", dockerBase + "  volumes: [\"/etc:/etc/host\"]\n", "SOURCE must be a path of the bundle, relative to its root; host paths are not mounted"},
	{"docker volume escapes", dockerBase + "  volumes: [\"../secrets:/s\"]\n", "SOURCE must stay inside the bundle; no .. in it"},
	{"docker volume dotdot inside", dockerBase + "  volumes: [\"a/../b:/s\"]\n", "no .. in it"},
	{"docker volume empty source", dockerBase + "  volumes: [\":/s\"]\n", "SOURCE is empty"},
	{"docker volume no target", dockerBase + "  volumes: [config]\n", `want SOURCE:TARGET or SOURCE:TARGET:ro, got "config"`},
	{"docker volume relative target", dockerBase + "  volumes: [\"config:etc\"]\n", `TARGET "etc" must be an absolute path in the container`},
	{"docker volume over root", dockerBase + "  volumes: [\"config:/\"]\n", "TARGET cannot be /"},
	{"docker volume too many parts", dockerBase + "  volumes: [\"a:/b:ro:x\"]\n", "want SOURCE:TARGET or SOURCE:TARGET:ro"},
	{"docker volume mapping", dockerBase + "  volumes: [{source: a, target: /b}]\n", "want a string, got a mapping"},
	{"docker volumes twice", dockerBase + "  volumes: [\"a:/data\", \"b:/data/\"]\n", "docker.volumes[1]: /data is mounted twice (also docker.volumes[0])"},
	{"docker tmpfs relative", dockerBase + "  tmpfs: [tmp]\n", `docker.tmpfs[0]: "tmp": TARGET "tmp" must be an absolute path`},
	{"docker tmpfs size zero", dockerBase + "  tmpfs: [\"/tmp:size=0m\"]\n", "size must be above 0"},
	{"docker tmpfs mode", dockerBase + "  tmpfs: [\"/tmp:mode=1777\"]\n", `the only option is size (TARGET:size=64m), got "mode=1777"`},
	{"docker tmpfs two options", dockerBase + "  tmpfs: [\"/tmp:size=64m,mode=1777\"]\n", "the only option is size"},
	{"docker tmpfs size units", dockerBase + "  tmpfs: [\"/tmp:size=64Mi\"]\n", "(write 64m)"},
	{"docker tmpfs size above the bound", dockerBase + "  tmpfs: [\"/tmp:size=2048g\"]\n", "above the bound of 1024g"},
	{"docker tmpfs over a volume", dockerBase + "  volumes: [\"a:/data\"]\n  tmpfs: [/data]\n", "docker.tmpfs[0]: /data is mounted twice (also docker.volumes[0])"},

	// docker: pull, network, auth.
	{"docker pull bad", dockerBase + "  pull: sometimes\n", `docker.pull: must be missing or always or never, got "sometimes"`},
	{"docker pull typo", dockerBase + "  pull: allways\n", `did you mean "always"`},
	{"docker pull empty", dockerBase + "  pull: \"\"\n", "must be missing or always or never"},
	{"docker network bridge", dockerBase + "  network: bridge\n", `docker.network: only host networking is supported (the container listens on 127.0.0.1:${PORT}), got "bridge"`},
	{"docker network empty", dockerBase + "  network: \"\"\n", "only host networking is supported"},
	{"docker auth without username", dockerBase + "  auth: {password_param: /shop/REGISTRY_PASSWORD}\nparams: [/shop/REGISTRY_PASSWORD]\n", "docker.auth.username: is required"},
	{"docker auth username with a space", dockerBase + "  auth: {username: \"c i\", password_param: /p/X}\nparams: [/p/X]\n", `bad user name "c i"`},
	{"docker auth without password", dockerBase + "  auth: {username: ci}\n", "docker.auth.password_param: is required"},
	{"docker auth password not a param", dockerBase + "  auth: {username: ci, password_param: /shop/REGISTRY_PASSWORD}\n", `docker.auth.password_param: "/shop/REGISTRY_PASSWORD" is not one of the spec's params`},
	{"docker auth string", dockerBase + "  auth: ci:secret\n", "want a mapping of keys"},

	// router.
	{"listener without port", base + "router:\n  production: \"8080\"\n", "want host:port"},
	{"listener port zero", base + "router:\n  production: 127.0.0.1:0\n", "want 1 to 65535"},
	{"listener port too big", base + "router:\n  production: 127.0.0.1:99999\n", "want 1 to 65535"},
	{"listener bad host", base + "router:\n  production: \"bad host:80\"\n", `bad host "bad host"`},
	{"listener wildcard name", base + "router:\n  production: \"*.example.com:80\"\n", `bad host "*.example.com"`},
	{"listeners equal", base + "router:\n  production: 127.0.0.1:9000\n  test: 127.0.0.1:9000\n", "must differ"},
	{"listeners wildcard overlap", base + "router:\n  production: \":9000\"\n  test: 127.0.0.1:9000\n", "must differ"},
	{"listener default clash", base + "router:\n  production: 127.0.0.1:8081\n", "must differ"},
	{"host bad", base + "router:\n  hosts: [\"shop example\"]\n", "bad host name"},
	{"host duplicate", base + "router:\n  hosts: [a.example, A.example]\n", "listed twice"},
	{"preview header bad", base + "router:\n  preview_header: \"X Fleet\"\n", "bad header name"},

	// health.
	{"health path relative", base + "health:\n  path: healthz\n", "starting with /"},
	{"health interval zero", base + "health:\n  interval: 0s\n", "must be longer than 0s"},
	{"health interval below the router's", base + "health:\n  interval: 5ms\n  timeout: 5ms\n", "shorter than 10ms"},
	{"health timeout above interval", base + "health:\n  interval: 1s\n  timeout: 2s\n", "longer than health.interval"},
	{"health threshold zero", base + "health:\n  healthy_threshold: 0\n  unhealthy_threshold: 0\n", "must be at least 1, got 0"},
	{"health startup zero", base + "health:\n  startup_timeout: 0s\n", "must be longer than 0s"},

	// hooks.
	{"hook without run", base + "hooks:\n  before_install: [{timeout: 1m}]\n", "run: is required"},
	{"hook unknown field", base + "hooks:\n  before_install: [{command: x}]\n", "unknown key"},
	{"hook timeout zero", base + "hooks:\n  on_rollback: [{run: x, timeout: 0s}]\n", "must be longer than 0s"},
	{"hook list got mapping", base + "hooks:\n  on_rollback: {run: x}\n", "want a list, got a mapping"},

	// strategy.
	{"preset and steps", base + "strategy:\n  preset: AllAtOnce\n  steps: [{weight: 100}]\n", "set preset or steps, not both"},
	{"preset unknown", base + "strategy:\n  preset: Canary10Percent5Minuts\n", "did you mean"},
	{"preset lower case", base + "strategy:\n  preset: canary10percent5minutes\n", `did you mean "Canary10Percent5Minutes"`},
	{"preset unknown far", base + "strategy:\n  preset: Rolling\n", "unknown preset"},
	{"preset zero percent", base + "strategy:\n  preset: Canary0Percent5Minutes\n", "between 1 and 99"},
	{"preset zero minutes", base + "strategy:\n  preset: Linear10PercentEvery0Minutes\n", "between 1 and 1440 minutes"},
	{"weight above 100", base + "strategy:\n  steps: [{weight: 101}]\n", "weight must be between 0 and 100, got 101"},
	{"weight negative", base + "strategy:\n  steps: [{weight: -1}, {weight: 100}]\n", "got -1"},
	{"weight zero", base + "strategy:\n  steps: [{weight: 0}, {weight: 100}]\n", "0 is not above the previous weight 0"},
	{"weights fall", base + "strategy:\n  steps: [{weight: 50}, {weight: 20}, {weight: 100}]\n", "weights must rise: 20 is not above the previous weight 50"},
	{"weights repeat", base + "strategy:\n  steps: [{weight: 50}, {weight: 50}, {weight: 100}]\n", "weights must rise"},
	{"last weight not 100", base + "strategy:\n  steps: [{weight: 10}, {weight: 50}]\n", "the last step must set weight 100"},
	{"last step pause", base + "strategy:\n  steps: [{weight: 10}, {pause: {}}]\n", "the last step must set weight 100"},
	{"pause after 100", base + "strategy:\n  steps: [{weight: 100, pause: 5m}]\n", "use bake for that"},
	{"empty step", base + "strategy:\n  steps: [{}, {weight: 100}]\n", "a step sets weight, pause or both"},
	{"null step", base + "strategy:\n  steps:\n    -\n    - weight: 100\n", "a step sets weight, pause or both"},
	{"pause zero", base + "strategy:\n  steps: [{weight: 10, pause: 0s}, {weight: 100}]\n", "a pause must be longer than 0s"},
	{"pause mapping with keys", base + "strategy:\n  steps: [{pause: {until: promote}}, {weight: 100}]\n", "or {} to wait for promote"},
	{"pause list", base + "strategy:\n  steps: [{pause: []}, {weight: 100}]\n", "want a duration"},
	{"step unknown key", base + "strategy:\n  steps: [{weigth: 100}]\n", `did you mean "weight"`},
	{"approval bad", base + "strategy:\n  approval: manul\n", `must be auto or manual, got "manul" (did you mean "manual"?)`},
	{"approval timeout zero", base + "strategy:\n  approval_timeout: 0s\n", "must be longer than 0s"},
	{"on approval timeout bad", base + "strategy:\n  on_approval_timeout: abort\n", "must be rollback or continue"},
	{"progress deadline zero", base + "strategy:\n  progress_deadline: 0s\n", "must be longer than 0s"},

	// checks.
	{"checks interval zero", base + "checks:\n  interval: 0s\n", "must be longer than 0s"},
	{"failure limit zero", base + "checks:\n  failure_limit: 0\n", "must be at least 1, got 0"},
	{"min requests negative", base + "checks:\n  min_requests: -1\n", "must be at least 0, got -1"},
	{"rule empty", base + "checks:\n  rules: [{}]\n", "a rule needs one of"},
	{"rule two kinds", base + "checks:\n  rules: [{error_rate: {max: 0.1}, latency_p99: {max: 1s}}]\n", "a rule has one kind, found error_rate and latency_p99"},
	{"rule unknown kind", base + "checks:\n  rules: [{latency_p90: {max: 1s}}]\n", `did you mean "latency_p50"`},
	{"error rate above 1", base + "checks:\n  rules: [{error_rate: {max: 2}}]\n", "must be between 0 and 1"},
	{"error rate without limit", base + "checks:\n  rules: [{error_rate: {}}]\n", "set max"},
	{"error rate ratio zero", base + "checks:\n  rules: [{error_rate: {max_vs_blue: 0}}]\n", "must be a ratio above 0"},
	{"latency max zero", base + "checks:\n  rules: [{latency_p99: {max: 0s}}]\n", "must be longer than 0s"},
	{"latency max number", base + "checks:\n  rules: [{latency_p95: {max: 500}}]\n", "want a duration"},
	{"latency without limit", base + "checks:\n  rules: [{latency_p50: {}}]\n", "set max"},
	{"command rule without run", base + "checks:\n  rules: [{command: {timeout: 1s}}]\n", "run: is required"},
	{"webhook bad url", base + "checks:\n  rules: [{webhook: {url: \"ftp://x/check\"}}]\n", "want an http:// or https:// URL"},
	{"webhook no host", base + "checks:\n  rules: [{webhook: {url: \"http:///check\"}}]\n", "want an http:// or https:// URL"},
	{"prometheus no query", base + "checks:\n  prometheus: http://127.0.0.1:9090\n  rules:\n    - prometheus: { max: 0.05 }\n", "is required: a PromQL query"},
	{"prometheus no bound", base + "checks:\n  prometheus: http://127.0.0.1:9090\n  rules:\n    - prometheus: { query: 'vector(1)' }\n", "set max, min, or both"},
	{"prometheus min above max", base + "checks:\n  rules:\n    - prometheus: { query: 'vector(1)', min: 2, max: 1 }\n", "2 is above max 1: no value could pass"},
	{"prometheus unknown placeholder", base + "checks:\n  rules:\n    - prometheus: { query: 'up{app=\"${ap}\"}', max: 1 }\n", "unknown placeholder ${ap}; a query may use ${app}, ${fleet}, ${revision}, ${interval}"},
	{"prometheus unclosed placeholder", base + "checks:\n  rules:\n    - prometheus: { query: 'sum(up) > ${interval', max: 1 }\n", "unclosed ${"},
	{"prometheus zero timeout", base + "checks:\n  rules:\n    - prometheus: { query: 'vector(1)', max: 1, timeout: 0s }\n", "timeout"},
	{"prometheus bad url", base + "checks:\n  prometheus: 127.0.0.1:9090\n  rules:\n    - prometheus: { query: 'vector(1)', max: 1 }\n", "want the http:// or https:// address of a Prometheus"},
	{"prometheus url with query", base + "checks:\n  prometheus: http://127.0.0.1:9090/?x=1\n", "without ?query or #fragment"},
	{"judge confidence 1", base + "checks:\n  rules:\n    - judge: {confidence: 1}\n", "confidence: must be at least 0.5 and below 1"},
	{"judge confidence percent", base + "checks:\n  rules:\n    - judge: {confidence: 99}\n", "got 99"},
	{"judge few samples", base + "checks:\n  rules:\n    - judge: {min_samples: 5}\n", "min_samples: must be at least 20"},
	{"judge speedup", base + "checks:\n  rules:\n    - judge: {max_slowdown: 0.9}\n", "max_slowdown: must be 1 or more"},
	{"judge error increase", base + "checks:\n  rules:\n    - judge: {max_error_increase: 5}\n", "max_error_increase: must be between 0 and 1"},
	{"judge unknown key", base + "checks:\n  rules:\n    - judge: {max_slowdwn: 1.2}\n", `did you mean "max_slowdown"`},
	{"judge string", base + "checks:\n  rules:\n    - judge: strict\n", "want a mapping of keys"},
	{"judge with another kind", base + "checks:\n  rules:\n    - {judge: {}, error_rate: {max: 0.1}}\n", "found error_rate and judge"},

	// bake, retire.
	{"bake number", base + "bake: 10\n", "want a duration"},
	{"retire unknown", base + "retire:\n  keep_blu: 1h\n", `did you mean "keep_blue"`},
	{"retire keep green string", base + "retire:\n  keep_green_on_rollback: \"no\"\n", "want true or false"},

	// params.
	{"param without slash", base + "params: [DATABASE_URL]\n", "bad parameter name"},
	{"param empty segment", base + "params: [\"/shop//URL\"]\n", "bad parameter name"},
	{"param trailing slash", base + "params: [\"/shop/\"]\n", "bad parameter name"},
	{"param bad character", base + "params: [\"/shop/DB URL\"]\n", "bad parameter name"},
	{"param bad env name", base + "params: [\"/shop/db.url\"]\n", `injected as env "db.url"`},
	{"param env duplicate", base + "params: [/a/URL, /b/URL]\n", "would both set env URL"},
	{"param listed twice", base + "params: [/a/URL, /a/URL]\n", "would both set env URL"},
	{"param env clash", base + "  env: {URL: x}\nparams: [/a/URL]\n", "which process.env sets too"},
	{"param reserved", base + "params: [/a/PORT]\n", "PORT is set by bluegreen"},
	{"params string", base + "params: /a/URL\n", "want a list"},

	// Stacks: services deployed as one.
	{"stack dependency cycle", stackBase + "    depends_on: [api]\n  api:\n    process: {command: [./api]}\n    depends_on: [db]\n  db:\n    process: {command: [./db]}\n    depends_on: [web]\n", "bluegreen.yaml:6:18: services.web.depends_on[0]: dependency cycle: api → db → web → api"},
	{"stack depends on itself", stackBase + "    depends_on: [web]\n", "service web depends on itself"},
	{"stack unknown dependency", stackBase + "    depends_on: [apii]\n  api:\n    process: {command: [./api]}\n", `bluegreen.yaml:6:18: services.web.depends_on[0]: unknown service "apii" (did you mean "api"?); the stack has api, web`},
	{"stack unknown service url", "app: shop\nservices:\n  web:\n    process: {command: [./web, \"--api=${services.ap.url}\"]}\n    router: {}\n  api:\n    process: {command: [./api]}\n", `bluegreen.yaml:4:32: services.web.process.command[1]: ${services.ap.url}: unknown service "ap" (did you mean "api"?); the stack has api, web`},
	{"stack unknown service url in env", "app: shop\nservices:\n  web:\n    process:\n      command: [./web]\n      env: {API: \"${services.ap.url}/v1\"}\n    router: {}\n", `bluegreen.yaml:6:18: services.web.process.env.API: ${services.ap.url}: unknown service "ap"`},
	{"service url without services", base + "  env: {API: \"${services.api.url}\"}\n", "this spec lists no services"},
	{"stack two services on one path", stackBase + "  api:\n    process: {command: [./api]}\n    router: {}\n", "bluegreen.yaml:5:13: services.web.router.path: services api and web both answer path / on 127.0.0.1:8080 for every host"},
	{"stack two services on one path and host", stackBase + "  api:\n    process: {command: [./api]}\n    router: {hosts: [a.example, B.example]}\n  admin:\n    process: {command: [./admin]}\n    router: {hosts: [b.example]}\n", `services admin and api both answer path / on 127.0.0.1:8080 for host "B.example"`},
	{"stack internal service with a test listener", stackBase + "  api:\n    process: {command: [./api]}\n    router: {test: 127.0.0.1:9091, path: /api}\n", "bluegreen.yaml:8:20: services.api.router.test: a test listener without a production listener: an internal service has no test listener"},
	{"stack production on another's test", stackBase + "  api:\n    process: {command: [./api]}\n    router: {production: 127.0.0.1:8081, test: 127.0.0.1:9091, path: /api}\n", "services.web.router.test: 127.0.0.1:8081 cannot be the test listener of service web: it is the production listener of service api"},
	{"stack run section beside services", "app: shop\nprocess: {command: [./x]}\n" + stackBase[len("app: shop\n"):], "bluegreen.yaml:2:10: process: a stack's services each have their own run section"},
	{"stack service without run section", stackBase + "  api:\n    router: {path: /api}\n", "services.api.process.command: is required"},
	{"stack service null", stackBase + "  api:\n", "services.api.process.command: is required"},
	{"stack service docker without section", stackBase + "  api:\n    platform: docker\n", "services.api.docker: is required for platform docker"},
	{"stack service docker escape", stackBase + "  api:\n    platform: docker\n    docker: {image: api:1, privileged: true}\n", "services.api.docker.privileged: privileged containers are refused"},
	{"stack service bad name", stackBase + "  Api_1:\n    process: {command: [./api]}\n", `services.Api_1: bad service name "Api_1"`},
	{"stack no public service", "app: shop\nservices:\n  worker:\n    process: {command: [./w]}\n", "no service has a router section"},
	{"stack path with a trailing slash", stackBase + "  api:\n    process: {command: [./api]}\n    router: {path: /api/}\n", `write the prefix without its last /: "/api"`},
	{"stack path without slash", stackBase + "  api:\n    process: {command: [./api]}\n    router: {path: api}\n", "want a path prefix starting with /"},
	{"stack service health", stackBase + "    health: {timeout: 5s}\n", "services.web.health.timeout: 5s is longer than health.interval 2s"},
	{"stack service hook", stackBase + "    hooks: {validate_service: [{timeout: 1m}]}\n", "services.web.hooks.validate_service[0].run: is required"},
	{"stack service unknown key", stackBase + "    depend_on: [api]\n", `did you mean "depends_on"`},
	{"stack param env clash", "app: shop\nparams: [/a/URL]\nservices:\n  web:\n    process: {command: [./web], env: {URL: x}}\n    router: {}\n", "which services.web.process.env sets too"},

	// Everything at once: every problem is reported, in file order.
	{"many problems", "app: Shop\nplatfrom: process\nprocess:\n  command: ./x\n  stop_timout: 5\n  stop_signal: TERM\nrouter:\n  production: 127.0.0.1:8080\n  test: 127.0.0.1:8080\nstrategy:\n  preset: AllAtOnce\n  steps: [{weight: 120}, {pause: 0s}, {weight: 10}]\nchecks:\n  failure_limit: 0\nparams: [/a/X, /b/X]\n", "platfrom"},
}

// aliasBomb repeats one alias past the decoder's node budget.
func aliasBomb() string {
	return base + "params: [&p /a/B" + strings.Repeat(", *p", nodeBudget) + "]\n"
}

// nestedAliasBomb is small as a tree (about a thousand nodes) but expands
// to fifty thousand: a list of a thousand uses of one hook, used by every
// hook event.
func nestedAliasBomb() string {
	var b strings.Builder
	b.WriteString("x-h: &h {run: ./x, timeout: 1m}\nx-l: &l [*h" + strings.Repeat(", *h", 999) + "]\n" + base + "hooks:\n")
	for _, ev := range (&Hooks{}).Events() {
		fmt.Fprintf(&b, "  %s: *l\n", ev.Name)
	}
	return b.String()
}

func TestProblems(t *testing.T) {
	var golden strings.Builder
	seen := map[string]bool{}
	for _, tc := range problemCases {
		if seen[tc.name] {
			t.Fatalf("two cases named %q", tc.name)
		}
		seen[tc.name] = true
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml), FileName)
			var errs *Errors
			if !errors.As(err, &errs) {
				t.Fatalf("Parse = %v, want *Errors", err)
			}
			if len(errs.Problems) == 0 {
				t.Fatal("*Errors without problems")
			}
			for _, p := range errs.Problems {
				if p.File != FileName || p.Message == "" {
					t.Errorf("problem without file or message: %+v", p)
				}
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("problems:\n%s\nwant one containing %q", err, tc.want)
			}
			fmt.Fprintf(&golden, "== %s\n%s\n\n", tc.name, err)
		})
	}
	checkGolden(t, "testdata/problems.golden", golden.String())
}

// checkGolden compares got with the golden file, or rewrites it with -update.
func checkGolden(t *testing.T, file, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		gl, wl := strings.Split(got, "\n"), strings.Split(string(want), "\n")
		for i := 0; i < max(len(gl), len(wl)); i++ {
			g, w := "", ""
			if i < len(gl) {
				g = gl[i]
			}
			if i < len(wl) {
				w = wl[i]
			}
			if g != w {
				t.Fatalf("%s differs at line %d (go test -update rewrites it):\n got: %s\nwant: %s", file, i+1, g, w)
			}
		}
	}
}
