# The registry recipe (ConanCenter's layout: recipes/respool/all): downloads the release archive
# named in conandata.yml and checks its hash. packaging/registry/fill-release.sh writes both. The
# recipe in packaging/conan is the same package built from a checkout.
import os

from conan import ConanFile
from conan.tools.build import check_min_cppstd
from conan.tools.files import copy, get
from conan.tools.layout import basic_layout

required_conan_version = ">=2.0"


class RespoolConan(ConanFile):
    name = "respool"
    description = ("Header-only C++20 resource pool (database, Redis, HTTP connections) and an "
                   "IO-oriented thread pool that grows threads before it queues")
    license = "MIT"
    url = "https://github.com/conan-io/conan-center-index"
    homepage = "https://github.com/respool/respool"
    topics = ("connection-pool", "resource-pool", "thread-pool", "header-only")
    package_type = "header-library"
    settings = "os", "arch", "compiler", "build_type"
    no_copy_source = True

    def layout(self):
        basic_layout(self, src_folder="src")

    def package_id(self):
        self.info.clear()

    def validate(self):
        check_min_cppstd(self, 20)

    def source(self):
        get(self, **self.conan_data["sources"][self.version], strip_root=True)

    def build(self):
        pass

    def package(self):
        copy(self, "LICENSE", self.source_folder, os.path.join(self.package_folder, "licenses"))
        copy(self, "*.hpp", os.path.join(self.source_folder, "include"),
             os.path.join(self.package_folder, "include"))

    def package_info(self):
        self.cpp_info.bindirs = []
        self.cpp_info.libdirs = []
        self.cpp_info.set_property("cmake_file_name", "respool")
        self.cpp_info.set_property("cmake_target_name", "respool::respool")
        self.cpp_info.set_property("pkg_config_name", "respool")
        if self.settings.os in ("Linux", "FreeBSD"):
            self.cpp_info.system_libs = ["pthread"]
