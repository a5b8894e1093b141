# Conan 2 recipe for respool, a header-only library. From the repository root:
#   conan create packaging/conan
import os
import re

from conan import ConanFile
from conan.tools.files import copy, load
from conan.tools.layout import basic_layout


class RespoolConan(ConanFile):
    name = "respool"
    description = ("Header-only C++20 resource pool (database, Redis, HTTP connections) and an "
                   "IO-oriented thread pool that grows threads before it queues")
    license = "MIT"
    topics = ("connection-pool", "resource-pool", "thread-pool", "header-only")
    package_type = "header-library"
    settings = "os", "arch", "compiler", "build_type"
    no_copy_source = True

    def _root(self):
        return os.path.join(self.recipe_folder, "..", "..")

    def set_version(self):
        # The version is written once, in include/respool/version.hpp.
        text = load(self, os.path.join(self._root(), "include", "respool", "version.hpp"))
        parts = [re.search(rf"#define RESPOOL_VERSION_{p} (\d+)", text).group(1)
                 for p in ("MAJOR", "MINOR", "PATCH")]
        self.version = ".".join(parts)

    def export_sources(self):
        copy(self, "*.hpp", os.path.join(self._root(), "include"),
             os.path.join(self.export_sources_folder, "include"))
        copy(self, "LICENSE", self._root(), self.export_sources_folder)

    def layout(self):
        basic_layout(self, src_folder=".")

    def validate(self):
        from conan.tools.build import check_min_cppstd
        check_min_cppstd(self, 20)

    def package_id(self):
        self.info.clear()

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
