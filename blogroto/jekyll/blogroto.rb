# blogroto for Jekyll: `jekyll build` and `jekyll serve` show the stylized images.
#
# Installed by `blogroto init SITE` as SITE/_plugins/blogroto.rb, or as the gem jekyll-blogroto
# (jekyll-blogroto.gemspec beside this file; docs/jekyll.md). After Jekyll has
# read the site, and before anything renders, this runs `blogroto build SITE --json` (incremental:
# a no-op when nothing changed), then hands Jekyll what that build wrote:
#   - each document blogroto rewrote gets the rewritten body and the front-matter keys blogroto
#     changed (image paths, algorotoscope_credits);
#   - every file the build made that the site does not have (stylized images, the filter catalog)
#     becomes a static file or, with front matter, a page.
# Where plugins cannot run (GitHub Pages), build with `blogroto build` in CI instead (docs/ci.md).
#
# Settings (_config.yml): `blogroto_command: [python3, -m, blogroto]` (default: `blogroto` on PATH);
# the BLOGROTO_COMMAND environment variable (a shell-style string) overrides it.

require "date"
require "json"
require "open3"
require "set"
require "shellwords"
require "yaml"

module Blogroto
  # A file blogroto's build made (a stylized image, its variants). Jekyll copies every static file
  # again on every build and gives the copy the source's mtime; one whose copy already has the same
  # size and mtime is left alone, so a no-op build does not copy thousands of images again.
  class BuiltFile < Jekyll::StaticFile
    def write(dest)
      dest_path = destination(dest)
      if File.file?(dest_path) && !File.symlink?(dest_path)
        ours = File.stat(path)
        theirs = File.stat(dest_path)
        return false if ours.size == theirs.size && ours.mtime.to_i == theirs.mtime.to_i
      end
      super
    end
  end

  YAML_FRONT_MATTER = /\A(---\s*\n.*?\n?)^((---|\.\.\.)\s*$\n?)/m.freeze

  def self.command(site)
    from_env = ENV["BLOGROTO_COMMAND"]
    return Shellwords.split(from_env) if from_env && !from_env.strip.empty?
    configured = site.config["blogroto_command"] || "blogroto"
    configured.is_a?(Array) ? configured.map(&:to_s) : Shellwords.split(configured.to_s)
  end

  def self.build(site)
    started = Time.now
    argv = command(site) + ["build", site.source, "--json"]
    begin
      stdout, stderr, status = Open3.capture3(*argv)
    rescue SystemCallError => e
      raise Jekyll::Errors::FatalException,
            "blogroto: cannot run `#{argv.shelljoin}`: #{e.message} (set blogroto_command in _config.yml)"
    end
    summary = begin
      JSON.parse(stdout)
    rescue JSON::ParserError
      nil
    end
    unless summary
      raise Jekyll::Errors::FatalException,
            "blogroto: `#{argv.shelljoin}` failed (exit #{status.exitstatus}): #{stderr.strip.lines.last(5).join}"
    end
    (summary["warnings"] || []).each { |w| Jekyll.logger.warn "blogroto:", w }
    (summary["errors"] || []).each { |e| Jekyll.logger.error "blogroto:", e }
    Jekyll.logger.info "blogroto:", format("%d images stylized, %d cached, %.2fs (%s)", summary["images_stylized"].to_i,
                                            summary["cache_hits"].to_i, Time.now - started, summary["out_dir"])
    summary
  end

  def self.split(text, path)
    m = YAML_FRONT_MATTER.match(text)
    return [{}, text] unless m
    [YAML.safe_load(m[1], permitted_classes: [Date, Time], aliases: true) || {}, m.post_match]
  rescue Psych::Exception => e
    Jekyll.logger.warn "blogroto:", "#{path}: front matter not read (#{e.message}); left as Jekyll read it"
    nil
  end

  # The document's body and the front-matter keys blogroto changed (compared with the author's
  # file, not with Jekyll's processed data: Jekyll turns `tags: x` into a list, for one).
  def self.adopt(item, built)
    return unless File.file?(built)
    source = File.join(item.site.source, item.relative_path)
    return unless File.file?(source)
    return if File.identical?(source, built) # a hard link: nothing rewritten
    opts = Jekyll::Utils.merged_file_read_opts(item.site, {})
    old = split(File.read(source, **opts), source)
    new = split(File.read(built, **opts), built)
    return unless old && new
    item.content = new[1]
    new[0].each { |key, value| item.data[key] = value unless old[0].key?(key) && old[0][key] == value }
  end

  def self.publish(site, out_dir)
    site.documents.each { |doc| adopt(doc, File.join(out_dir, doc.relative_path)) }
    site.pages.each { |page| adopt(page, File.join(out_dir, page.relative_path)) }
    add_new_files(site, out_dir, "")
  end

  # Files the build made that the site does not have (stylized images, the catalog), found by
  # comparing folder listings: the output mirrors the whole site, so stat-ing each file would not scale.
  def self.add_new_files(site, out_dir, rel)
    here = File.join(out_dir, rel)
    there = File.join(site.source, rel)
    theirs = File.directory?(there) ? Set.new(Dir.children(there)) : Set.new
    Dir.children(here).sort.each do |name|
      next if name.start_with?("_", ".") # blogroto's own records, Jekyll's special folders
      path = File.join(here, name)
      child = rel.empty? ? name : File.join(rel, name)
      next if File.symlink?(path)
      if File.directory?(path)
        add_new_files(site, out_dir, child) if !theirs.include?(name) || site_dir_differs?(path, File.join(there, name))
      elsif File.file?(path) && !theirs.include?(name)
        if File.read(path, 4) == "---\n" || File.read(path, 5) == "---\r\n"
          site.pages << Jekyll::Page.new(site, out_dir, rel, name)
        else
          site.static_files << Blogroto::BuiltFile.new(site, out_dir, rel, name)
        end
      end
    end
  end

  def self.site_dir_differs?(ours, theirs)
    !File.directory?(theirs) || Dir.children(ours).sort != Dir.children(theirs).sort ||
      Dir.glob("*/", base: ours).any?
  end
end

# Once, even when both the gem and a _plugins/ copy are loaded.
unless Blogroto.const_defined?(:HOOKED)
  Blogroto::HOOKED = true
  Jekyll::Hooks.register :site, :post_read do |site|
    summary = Blogroto.build(site)
    Blogroto.publish(site, summary["out_dir"])
  end
end
