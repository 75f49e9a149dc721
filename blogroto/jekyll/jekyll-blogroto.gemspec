# The gem form of blogroto's Jekyll plugin (docs/jekyll.md): gem build jekyll-blogroto.gemspec
Gem::Specification.new do |s|
  s.name = "jekyll-blogroto"
  s.version = File.read(File.join(__dir__, "..", "__init__.py"))[/__version__ = "([^"]+)"/, 1] || "0.1.0"
  s.summary = "Stylized images from blogroto in jekyll build and jekyll serve"
  s.description = "Runs blogroto (a Python tool, installed separately) before Jekyll renders, and hands Jekyll " \
                  "the rewritten documents and the stylized images."
  s.authors = ["blogroto"]
  s.license = "MIT"
  s.files = ["blogroto.rb", "jekyll-blogroto.rb"]
  s.require_paths = ["."]
  s.required_ruby_version = ">= 2.7"
  s.add_runtime_dependency "jekyll", ">= 4.0", "< 5"
end
